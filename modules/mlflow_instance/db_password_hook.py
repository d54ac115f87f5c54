"""Database password rotation for a running MLflow server (docs/runtime.md, "Rotation").

install-venv.sh copies this file into MLflow's venv as ``mlflow_db_password_hook``
with a ``.pth`` file that imports it in every process of the venv. It does
nothing unless ``MLFLOW_DB_PASSWORD_SSM_PARAMETER`` is set, which the launcher
sets in the environment of ``mlflow server`` only, so the server and its
serving processes (uvicorn's, gunicorn's) get it and the launcher does not.

Active, it listens to SQLAlchemy's ``do_connect`` on every Engine: each new
DBAPI connection to PostgreSQL or MySQL uses the password last read from that
SSM SecureString instead of the one in the URI. The value is reused for
``TTL`` seconds. When a connection attempt fails, the parameter is read again
at once (at most once per ``REREAD_INTERVAL``) and the attempt is repeated
with the new value, then with the last password that worked. If SSM cannot be
read, the last value is kept. Existing connections are not touched: MLflow's
engines use ``pool_pre_ping``, so a connection the database ended is replaced
at its next checkout, through this hook.

Only the standard library at module level (it is imported at every start of
the venv's Python); boto3 and SQLAlchemy are imported when it is activated.
No password is ever logged.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

ENV_PARAMETER = "MLFLOW_DB_PASSWORD_SSM_PARAMETER"
TTL = 60.0  # seconds a value read from SSM is reused
REREAD_INTERVAL = 2.0  # at most one SSM read per this many seconds, failures or not
DIALECTS = ("postgresql", "mysql")
PASSWORD_KEYS = ("password", "passwd")  # psycopg2/PyMySQL take "password"; MySQLdb-style "passwd"


def log(message: str) -> None:
    print(f"mlflow-db-password: {message}", file=sys.stderr, flush=True)


class PasswordCache:
    """The current database password: read through ``fetch``, reused for ``ttl`` seconds.

    ``fetch()`` returns the value in SSM or raises; ``clock`` is monotonic seconds.
    Thread-safe: one read at a time, and none sooner than ``reread_interval``
    after the previous one.
    """

    def __init__(self, fetch: Callable[[], str], ttl: float = TTL, reread_interval: float = REREAD_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.fetch, self.ttl, self.reread_interval, self.clock = fetch, ttl, reread_interval, clock
        self.value: str | None = None
        self.last_good: str | None = None
        self.fetched_at = float("-inf")  # when self.value was read or seeded
        self.read_at = float("-inf")  # the last read attempt, successful or not
        self.lock = threading.Lock()

    def _read(self, now: float) -> None:
        self.read_at = now
        try:
            value = self.fetch()
        except Exception as e:  # keep serving with the last value
            log(f"could not read the password from SSM ({type(e).__name__}); keeping the last one")
            return
        if not value:
            log("the password parameter in SSM is empty; keeping the last one")
            return
        if self.value is not None and value != self.value:
            log("read a new password from SSM")
        self.value, self.fetched_at = value, now

    def _may_read(self, now: float) -> bool:
        return now - self.read_at >= self.reread_interval

    def current(self, seed: str | None = None) -> str | None:
        """The password to try first. ``seed`` (the URI's) stands in until the first read."""
        with self.lock:
            now = self.clock()
            if self.value is None and seed:
                self.value, self.fetched_at = seed, now
            if now - self.fetched_at >= self.ttl and self._may_read(now):
                self._read(now)
            return self.value

    def after_failure(self, tried: str | None) -> list[str]:
        """Passwords to try after ``tried`` failed: a fresh read from SSM, then the last good one."""
        with self.lock:
            now = self.clock()
            if self._may_read(now):
                self._read(now)
            candidates = [self.value, self.last_good]
            return [p for i, p in enumerate(candidates) if p and p != tried and p not in candidates[:i]]

    def succeeded(self, password: str) -> None:
        with self.lock:
            self.last_good = password


def connect(cache: PasswordCache, attempt: Callable[[str | None], object], seed: str | None = None) -> object:
    """``attempt(password)`` with the cache's password; after a failure with the next candidates.

    Raises the first failure when every candidate fails.
    """
    password = cache.current(seed)
    try:
        connection = attempt(password)
    except Exception as first:
        for candidate in cache.after_failure(password):
            try:
                connection = attempt(candidate)
            except Exception:  # noqa: S112 (the next candidate; the first error is raised)
                continue
            cache.succeeded(candidate)
            return connection
        raise first
    if password:
        cache.succeeded(password)
    return connection


def ssm_fetch(name: str) -> Callable[[], str]:
    """A reader of SecureString ``name`` with short timeouts (region and endpoint from the environment)."""
    clients = []

    def fetch() -> str:
        if not clients:  # boto3 is imported at the first read, not at every process start
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=2, read_timeout=3,
                            retries={"max_attempts": 2, "mode": "standard"})
            clients.append(boto3.client("ssm", config=config))
        return clients[0].get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]

    return fetch


def install(name: str) -> PasswordCache:
    """Listen to do_connect on every Engine; returns the cache."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    cache = PasswordCache(ssm_fetch(name))

    @event.listens_for(Engine, "do_connect")
    def _rotated_password(dialect, conn_rec, cargs, cparams):
        key = next((k for k in PASSWORD_KEYS if k in cparams), None)
        if dialect.name not in DIALECTS or key is None:
            return None  # SQLAlchemy connects as usual

        def attempt(password):
            return dialect.connect(*cargs, **{**cparams, key: password})

        return connect(cache, attempt, seed=cparams[key])

    return cache


def activate(environ=os.environ) -> PasswordCache | None:
    name = environ.get(ENV_PARAMETER, "").strip()
    if not name:
        return None
    try:
        return install(name)
    except Exception as e:  # the server still starts, with the URI's password
        log(f"NOT active, the password is read only at start: {type(e).__name__}: {e}")
        return None


_cache = activate()
