"""The MLflow launcher: ``mlflow.service`` runs it at each start, as ``mlflow``.

It reads the deployment's values from SSM Parameter Store, upgrades the
database schema in-process, prepares the auth store, then execs ``mlflow
server`` configured through environment variables. Secrets stay in this
process and the server's environment and never reach a command line.

Configuration: the unit's environment (``launcher.env``, written by
modules/mlflow_instance, and ``Environment=`` lines), read once by
``Config.from_environ``; see ``Config`` for the variables. SSM parameters are
read by the full names the configuration gives for each logical key, so a
deployment can keep its own parameter names. The AWS endpoint follows the
standard variables (``AWS_ENDPOINT_URL``), which the tests use.

Only the standard library is imported at module level: tests import this file
directly; boto3, SQLAlchemy and MLflow come from the venv at run time.

Authentication (``MLFLOW_LAUNCH_AUTH=true``, docs/auth.md):

* the auth user store is the database ``auth_db_name`` on the same server and
  login as the tracking store; the launcher creates it (the RDS master user
  may) and brings its schema to head under a server-wide lock (GET_LOCK /
  pg_advisory_lock), so instances booting together do not race;
* MySQL family: upstream's first auth migration (8606fa83a998) names the
  foreign keys of experiment_permissions and registered_model_permissions both
  fk_user_id, which MySQL/MariaDB refuse (errno 121, mlflow#9642/#10964). The
  launcher creates those three tables itself with distinct foreign-key names;
  MLflow's migrate_if_needed then finds the tables without
  alembic_version_auth, stamps 8606fa83a998 and runs every later migration
  unchanged, so the schema is upstream's;
* basic_auth.ini holds the auth store URI (database password included) and no
  admin password (that goes in MLFLOW_AUTH_ADMIN_PASSWORD). MLflow only reads
  a file, so it is written mode 0600 into systemd's RuntimeDirectory (tmpfs,
  0700, removed at stop), or the state directory when started by hand;
* the admin password in SSM is authoritative: MLflow creates the admin with it
  on first start; at each later start the launcher resets the admin's password
  to SSM's when they differ (e.g. after rotation).

Artifacts (docs/adoption.md, "Old runs' artifacts"): the server proxies them
to ``s3://<bucket>/<ARTIFACTS_PREFIX>`` (``''`` = the bucket root). With
``MLFLOW_LAUNCH_REWRITE_LEGACY_ARTIFACT_URIS=true`` the launcher then rewrites,
after the schema upgrade and under a server-wide lock, every stored artifact
URI under that destination (``s3://<bucket>/<prefix>/<rest>``) to
``mlflow-artifacts:/<rest>``, which the server resolves to the same S3 object,
so runs logged by servers that handed clients ``s3://`` URIs stay readable
for clients without S3 credentials. Idempotent: a rewritten URI no longer
starts with ``s3://``.

Downgrades: before the schema upgrade, the launcher refuses (one log line,
exit status 78) to start an MLflow older than the database schema, i.e. one
that does not know the schema's alembic revision (docs/change-safety.md).

Serving (docs/runtime.md, "Serving"): after the preparation the launcher
runs MLflow's own ``mlflow server`` command in a fork of itself for each of two
servers (its checks, store initialization and auth bootstrap) and captures the
uvicorn or gunicorn command it would start instead of starting it
(``server_command``; no ``mlflow server`` parent stays resident). It then replaces itself (same
PID) with a supervisor that imports only the standard library
(``exec_supervisor``) and runs both servers on loopback, which nginx routes to
by path (``API_PREFIXES``, ``UI_ROUTES``):

* the API server on ``FIRST_PORT + 1``: gunicorn with ``API_WORKERS`` sync
  workers, MLflow's Flask app, for the tracking and registry REST API
  (``/api/2.0/mlflow/...`` and the like). Each worker runs one request at a
  time; gunicorn runs ``post_fork`` (this file is its ``--config``) in each;
* the UI server on ``FIRST_PORT``: uvicorn, one worker, MLflow's FastAPI app,
  for everything else: the UI, the proxied artifacts (asynchronous), the
  FastAPI-only routes and ``/health``. Its event loop comes from
  ``serving_loop`` (this module, on ``--app-dir``), which lets it run
  ``UI_THREADS`` Flask requests at once.

Every process's SQLAlchemy engines pool ``POOL_SIZE`` connections, so the
nested session of ``log_batch`` reuses a pooled one; the number of API
workers is capped by the database connection budget (``DB_CONNECTIONS``,
``serving_plan``). The launcher restarts a server that exits (after 5 s) and
stops both on SIGTERM. While the API server is down, nginx sends its
requests to the UI server (a backup upstream).

Adding a step: read its setting in ``Config.from_environ``, then use it in
``main`` or ``server_environment``.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

ENV_PREFIX = "MLFLOW_LAUNCH_"
REQUIRED_KEYS = (
    "db/host", "db/port", "db/name", "db/username", "db/password",
    "mlflow/artifact_bucket", "mlflow/allowed_hosts",
)
AUTH_KEYS = ("mlflow/admin_password", "mlflow/flask_secret_key")
OPTIONAL_KEYS = ("cache/endpoint", "cache/port")
ALL_KEYS = REQUIRED_KEYS + AUTH_KEYS + OPTIONAL_KEYS
ENGINES = ("mysql", "postgres")
LOCAL_HOSTS = ("localhost", "127.0.0.1")
MIB = 1024 * 1024
UI_SERVER_MEMORY = 320 * MIB  # RSS budget of the UI server: its uvicorn process (253 measured under load)
API_SERVER_MEMORY = 64 * MIB  # the API server's gunicorn master (41 measured)
API_WORKER_MEMORY = 300 * MIB  # one API worker (gunicorn sync worker with MLflow's Flask app; 280 measured)
RESERVED_MEMORY = 768 * MIB  # left to the OS, nginx, the agent and this launcher
FIRST_PORT = 5000  # the UI server listens on FIRST_PORT, the API server on FIRST_PORT + 1 (loopback)
PORTS = 2  # ports the servers use from FIRST_PORT on
UI_THREADS = 1  # Flask requests the UI server runs at once (its proxied artifacts are asynchronous)
POOL_SIZE = 2  # connections each engine of each process keeps: a request holds at most 2 of an engine
MAX_OVERFLOW = 1  # the least MLflow honours (it ignores 0); reached only if a request held 3
CONNECTIONS_PER_ENGINE = 2  # the most one request holds of an engine (log_batch's nested session)
API_TIMEOUT = 900  # seconds: gunicorn restarts a worker silent this long (= nginx's proxy_read_timeout)
DEFAULT_DB_CONNECTIONS = 120  # per instance, when the budget is not given (hand runs, tests)
POOL_RECYCLE_SECONDS = 1800  # replace pooled connections older than this (below servers' idle timeouts)
REQUEST_THREADS_VARIABLE = "MLFLOW_REQUEST_THREADS"  # read by serving_loop in the UI server
# The tracking and registry REST API, served by the API server (nginx.conf.j2 routes these
# prefixes there), except UI_ROUTES: MLflow's FastAPI-only routes under them, which the Flask
# app of the API server does not have (tests/runtime/test_render.py checks the default pin's routes).
API_PREFIXES = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/", "/api/3.0/mlflow/", "/ajax-api/3.0/mlflow/")
UI_ROUTES = ("/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info",
             "/api/3.0/mlflow/mcp-servers", "/ajax-api/3.0/mlflow/mcp-servers",
             "/ajax-api/3.0/mlflow/assistant")
# worker_environment moves these to MLflow's pool variables in the serving processes (not in
# `mlflow server`'s checks, run in the launcher's forks, whose NullPool refuses pool sizes).
WORKER_POOL_VARIABLES = {
    "MLFLOW_WORKER_POOL_SIZE": "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE",
    "MLFLOW_WORKER_MAX_OVERFLOW": "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW",
}
# Each server remembers a verified login this long instead of hashing the password (PBKDF2, tens
# to hundreds of ms of CPU) on every request; a password changed through another server's API is
# accepted until then (MLflow's basic_auth.ini explains the trade-off).
AUTH_CACHE_SECONDS = 60
RESTART_SECONDS = 5  # a server that exits is started again after this
SUPERVISE_FLAG = "--supervise-fd"  # launcher.py --supervise-fd FD: the supervisor (exec_supervisor)
MAX_API_WORKERS = 64
MIN_PORT = 1024
GET_PARAMETERS_LIMIT = 10  # names per ssm:GetParameters call
PG_AUTH_LOCK = 7340061584  # pg_advisory_lock key of the auth-store migration
PG_URI_LOCK = 7340061585  # pg_advisory_lock key of the artifact URI rewrite
LOCK_TIMEOUT = 300  # seconds to wait for another instance's server-wide lock (MySQL GET_LOCK)
ARTIFACTS_PREFIX = "artifacts"  # path of the artifacts destination inside the bucket, by default
DB_PASSWORD_HOOK_VARIABLE = "MLFLOW_DB_PASSWORD_SSM_PARAMETER"  # noqa: S105 (a variable name; = db_password_hook.ENV_PARAMETER)
PROXY_ROOT = "mlflow-artifacts:/"  # the server resolves mlflow-artifacts:/<rest> to <destination>/<rest>
# Every column where MLflow stores an artifact location: (table, column).
ARTIFACT_URI_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)
_TASKS: set = set()  # serving_loop's task, kept from the garbage collector
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")


class ConfigError(SystemExit):
    """A configuration variable is missing or wrong; the message names it."""


def ssm_variable(key: str) -> str:
    """Environment variable holding the SSM parameter name of ``key`` (db/host -> ..._SSM_DB_HOST)."""
    return f"{ENV_PREFIX}SSM_{key.upper().replace('/', '_')}"


def artifacts_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` is no S3 key path for the artifacts destination, or None. '' = the bucket root."""
    if prefix == "":
        return None
    segments = prefix.split("/")
    if not all(_PREFIX_SEGMENT.match(s) and s not in (".", "..") for s in segments):
        return (f"{prefix!r} is not a key path inside the bucket: '/'-separated segments of letters, "
                "digits, '_', '.', '-', no leading or trailing '/', no '.' or '..' ('' = the bucket root)")
    if segments[0] == "bootstrap":
        return f"{prefix!r} is under bootstrap/, where the bootstrap bundles are (read-only to the instances)"
    return None


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("true", "false"):
        return value == "true"
    raise ConfigError(f"mlflow-launch: {name}={value!r}; allowed: true or false")


def _number(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ConfigError(f"mlflow-launch: {name}={value!r}; allowed: a whole number")
    return int(value)


def engines_per_process(auth: bool) -> int:
    """SQLAlchemy engines of one server process: tracking store, model registry, and the auth store."""
    return 3 if auth else 2


def connections_per_process(auth: bool) -> int:
    """Connections one serving process (the UI server's uvicorn worker, or one API worker) can hold:
    it runs one request at a time, which holds at most CONNECTIONS_PER_ENGINE of each engine. The
    `mlflow server` parents initialize the stores with NullPool and keep none (worker_environment)."""
    return engines_per_process(auth) * CONNECTIONS_PER_ENGINE


@dataclass(frozen=True)
class ServingPlan:
    """How one instance serves within its share of the database connections."""

    api_workers: int
    """API workers (gunicorn sync workers); the UI server is one more serving process."""
    wanted: int
    """API workers asked for (MLFLOW_LAUNCH_API_WORKERS); more than api_workers when the budget caps them."""

    @property
    def processes(self) -> int:
        return self.api_workers + 1


def serving_plan(connections: int, api_workers: int, auth: bool) -> ServingPlan | None:
    """The UI server and up to ``api_workers`` API workers within ``connections`` (one instance's
    budget), or None if not even one API worker fits beside the UI server."""
    if api_workers < 1:
        return None
    fit = connections // connections_per_process(auth) - 1
    if fit < 1:
        return None
    return ServingPlan(api_workers=min(api_workers, fit), wanted=api_workers)


@dataclass(frozen=True)
class Config:
    """Everything the launcher is told, from its environment.

    Variables (prefix ``MLFLOW_LAUNCH_``): ``DB_ENGINE`` (mysql or postgres),
    ``CA_BUNDLE`` (CA file for TLS to the database), ``AUTH`` (true/false,
    default true), ``AUTH_ADMIN`` (default admin), ``AUTH_DB`` (default
    mlflow_auth), ``STATE_DIR`` (default /var/lib/mlflow), and
    ``SSM_<KEY>`` per logical key (``SSM_DB_HOST`` for db/host, ...),
    ``ARTIFACTS_PREFIX`` (the destination's path in the bucket; default
    artifacts when unset, set but empty = the bucket root) and
    ``REWRITE_LEGACY_ARTIFACT_URIS`` (true/false, default false),
    ``API_WORKERS`` (default 1; the budget may allow fewer), ``FIRST_PORT``
    (default 5000) and ``DB_CONNECTIONS`` (default 120). The region is
    ``AWS_REGION``.
    """

    db_engine: str
    ca_bundle: str
    region: str
    ssm_names: Mapping[str, str]
    auth: bool = True
    admin_username: str = "admin"
    auth_db_name: str = "mlflow_auth"
    state_dir: str = "/var/lib/mlflow"
    artifacts_prefix: str = ARTIFACTS_PREFIX
    rewrite_legacy_artifact_uris: bool = False
    api_workers: int = 1
    first_port: int = FIRST_PORT
    db_connections: int = DEFAULT_DB_CONNECTIONS
    required_keys: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        required = REQUIRED_KEYS + (AUTH_KEYS if self.auth else ())
        object.__setattr__(self, "required_keys", required)
        if self.db_engine not in ENGINES:
            raise ConfigError(f"mlflow-launch: {ENV_PREFIX}DB_ENGINE={self.db_engine!r}; allowed: "
                              + ", ".join(ENGINES))
        problem = artifacts_prefix_problem(self.artifacts_prefix)
        if problem:
            raise ConfigError(f"mlflow-launch: {ENV_PREFIX}ARTIFACTS_PREFIX={problem}")
        missing = [ssm_variable(k) for k in required if not self.ssm_names.get(k)]
        if missing:
            raise ConfigError("mlflow-launch: no SSM parameter name in " + ", ".join(missing))
        if not 1 <= self.api_workers <= MAX_API_WORKERS:
            raise ConfigError(f"mlflow-launch: {ENV_PREFIX}API_WORKERS={self.api_workers}; allowed: 1 to "
                              f"{MAX_API_WORKERS}")
        if not MIN_PORT <= self.first_port <= 65536 - PORTS:
            raise ConfigError(f"mlflow-launch: {ENV_PREFIX}FIRST_PORT={self.first_port}; allowed: "
                              f"{MIN_PORT} to {65536 - PORTS}")
        if self.serving_plan is None:
            least = 2 * connections_per_process(self.auth)
            raise ConfigError(f"mlflow-launch: {ENV_PREFIX}DB_CONNECTIONS={self.db_connections}; allowed: at "
                              f"least {least} (the UI server and one API worker)")

    @property
    def serving_plan(self) -> ServingPlan | None:
        return serving_plan(self.db_connections, self.api_workers, self.auth)

    @property
    def ui_port(self) -> int:
        return self.first_port

    @property
    def api_port(self) -> int:
        return self.first_port + 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Config:
        def need(name: str) -> str:
            value = environ.get(ENV_PREFIX + name, "").strip()
            if not value:
                raise ConfigError(f"mlflow-launch: {ENV_PREFIX}{name} is not set")
            return value

        region = environ.get("AWS_REGION", "").strip()
        if not region:
            raise ConfigError("mlflow-launch: AWS_REGION is not set")
        names = {k: environ.get(ssm_variable(k), "").strip() for k in ALL_KEYS}
        return cls(
            db_engine=need("DB_ENGINE"),
            ca_bundle=need("CA_BUNDLE"),
            region=region,
            ssm_names={k: name for k, name in names.items() if name},
            auth=_flag(environ, ENV_PREFIX + "AUTH", True),
            admin_username=environ.get(ENV_PREFIX + "AUTH_ADMIN", "").strip() or "admin",
            auth_db_name=environ.get(ENV_PREFIX + "AUTH_DB", "").strip() or "mlflow_auth",
            state_dir=environ.get(ENV_PREFIX + "STATE_DIR", "").strip() or "/var/lib/mlflow",
            # Unset: the default; set to "": the bucket root (launcher.env always sets it).
            artifacts_prefix=environ.get(ENV_PREFIX + "ARTIFACTS_PREFIX", ARTIFACTS_PREFIX).strip(),
            rewrite_legacy_artifact_uris=_flag(environ, ENV_PREFIX + "REWRITE_LEGACY_ARTIFACT_URIS", False),
            api_workers=_number(environ, ENV_PREFIX + "API_WORKERS", 1),
            first_port=_number(environ, ENV_PREFIX + "FIRST_PORT", FIRST_PORT),
            db_connections=_number(environ, ENV_PREFIX + "DB_CONNECTIONS", DEFAULT_DB_CONNECTIONS),
        )


def log(message: str) -> None:
    print(f"mlflow-launch: {message}", file=sys.stderr, flush=True)


def read_parameters(ssm, config: Config) -> dict[str, str]:
    """logical key -> value of every configured parameter; exits naming the missing required ones."""
    key_of = {name: key for key, name in config.ssm_names.items()}
    names = list(key_of)
    values: dict[str, str] = {}
    for i in range(0, len(names), GET_PARAMETERS_LIMIT):
        reply = ssm.get_parameters(Names=names[i:i + GET_PARAMETERS_LIMIT], WithDecryption=True)
        values.update({key_of[p["Name"]]: p["Value"] for p in reply["Parameters"] if p["Name"] in key_of})
    missing = [k for k in config.required_keys if not values.get(k, "").strip()]
    if missing:
        raise SystemExit("mlflow-launch: missing SSM parameters: "
                         + ", ".join(f"{k} ({config.ssm_names[k]})" for k in missing))
    return values


def backend_store_uri(values: Mapping[str, str], config: Config, database: str | None = None) -> str:
    """SQLAlchemy URI with TLS verified against the CA bundle; user and password URL-quoted."""
    user = quote(values["db/username"], safe="")
    password = quote(values["db/password"], safe="")
    name = quote(database or values["db/name"], safe="")
    where = f'{values["db/host"]}:{int(values["db/port"])}/{name}'
    ca = quote(config.ca_bundle)
    if config.db_engine == "mysql":
        return f"mysql+pymysql://{user}:{password}@{where}?ssl_ca={ca}"
    # The driver is named: SQLAlchemy 2.1's default PostgreSQL driver (psycopg 3) is not installed.
    return f"postgresql+psycopg2://{user}:{password}@{where}?sslmode=verify-full&sslrootcert={ca}"


def auth_config(values: Mapping[str, str], config: Config) -> str:
    """basic_auth.ini: the auth store's URI, no admin password."""
    uri = backend_store_uri(values, config, database=config.auth_db_name).replace("%", "%%")  # configparser
    return (f"[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = {uri}\n"
            f"admin_username = {config.admin_username}\ngrant_default_workspace_access = false\n"
            f"auth_cache_ttl_seconds = {AUTH_CACHE_SECONDS}\n")


def write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600, replacing it atomically."""
    tmp = f"{path}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    os.replace(tmp, path)


def _mysql_first_auth_tables(engine) -> None:
    """The three tables of 8606fa83a998 with distinct foreign-key names (mlflow#9642)."""
    key = "id INTEGER NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    perm = " VARCHAR(255) NOT NULL, user_id INTEGER NOT NULL, permission VARCHAR(255), "
    tables = (
        ("users", "username VARCHAR(255) UNIQUE, password_hash VARCHAR(255), is_admin BOOL"),
        ("experiment_permissions",
         "experiment_id" + perm + "CONSTRAINT unique_experiment_user UNIQUE (experiment_id, user_id)"),
        ("registered_model_permissions",
         "name" + perm + "CONSTRAINT unique_name_user UNIQUE (name, user_id)"),
    )
    with engine.begin() as conn:
        for table, columns in tables:
            fk = f", CONSTRAINT fk_{table}_user_id FOREIGN KEY (user_id) REFERENCES users (id)"
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {table} ({key}{columns}"
                                 f"{fk if table != 'users' else ''})")


def server_lock(conn, db_engine: str, name: str, pg_key: int) -> None:
    """Take a server-wide lock on ``conn``'s session (GET_LOCK / pg_advisory_lock) or exit.

    Held until released or the session ends; with NullPool, closing the connection ends it.
    """
    import sqlalchemy as sa

    if db_engine == "mysql":
        got = conn.execute(sa.text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": LOCK_TIMEOUT}).scalar()
        if got != 1:
            raise SystemExit(f"mlflow-launch: lock {name!r} not free after {LOCK_TIMEOUT}s")
    else:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": pg_key})


def prepare_auth_store(values: Mapping[str, str], config: Config) -> None:
    """Create the auth database if needed, migrate it to head, sync the admin password with SSM."""
    import sqlalchemy as sa
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    server = sa.create_engine(backend_store_uri(values, config), isolation_level="AUTOCOMMIT",
                              poolclass=sa.pool.NullPool)
    name = server.dialect.identifier_preparer.quote(config.auth_db_name)
    with server.connect() as conn:
        if config.db_engine == "mysql":
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {name} CHARACTER SET utf8mb4")
        else:
            exists = sa.text("SELECT 1 FROM pg_database WHERE datname = :n")
            if not conn.execute(exists, {"n": config.auth_db_name}).first():
                try:
                    conn.exec_driver_sql(f"CREATE DATABASE {name}")
                except sa.exc.DBAPIError:
                    if not conn.execute(exists, {"n": config.auth_db_name}).first():
                        raise  # else another instance was faster
    uri = backend_store_uri(values, config, database=config.auth_db_name)
    engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    with engine.connect() as lock:
        server_lock(lock, config.db_engine, "mlflow_auth", PG_AUTH_LOCK)
        if config.db_engine == "mysql" and "alembic_version_auth" not in sa.inspect(engine).get_table_names():
            _mysql_first_auth_tables(engine)
            log("created the first auth tables (MySQL workaround for mlflow#9642)")
        store, password = SqlAlchemyStore(), values["mlflow/admin_password"]
        store.init_db(uri)  # migrates to head
        admin = config.admin_username
        if store.has_user(admin, use_primary=True) and not store.authenticate_user(
                admin, password, use_primary=True):
            store.update_user(admin, password=password)
            log(f"set the password of {admin!r} to the one in SSM")
        store.engine.dispose()
    engine.dispose()
    server.dispose()


def artifacts_destination(bucket: str, prefix: str) -> str:
    """Where the server stores proxied artifacts: s3://bucket/prefix, or s3://bucket for prefix ''."""
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def rewrite_artifact_uris(conn, destination: str) -> dict[str, int]:
    """Rewrite URIs under ``destination`` to mlflow-artifacts:/ URIs on ``conn``; rows changed per column.

    ``destination`` is the server's MLFLOW_ARTIFACTS_DESTINATION. A URI maps when it is
    ``destination`` or ``destination/<rest>`` (exact, case-sensitive prefix; ``<rest>`` not
    starting with '/'): it becomes ``mlflow-artifacts:/<rest>``, which the server resolves back
    to ``destination/<rest>``: the same object, nothing copied. Other buckets, other paths and
    other schemes are left alone. Running it again changes nothing. The caller commits.
    """
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql

    root = destination.rstrip("/")
    n = len(root)  # characters: substr counts characters on every engine
    if conn.dialect.name == "mysql":  # byte comparison: MySQL's collations ignore case and trailing spaces
        def exact(expr):
            return sa.cast(expr, mysql.BINARY())
    else:  # PostgreSQL and SQLite compare text exactly
        def exact(expr):
            return expr
    inspector = sa.inspect(conn)
    tables = set(inspector.get_table_names())
    counts: dict[str, int] = {}
    for table, column in ARTIFACT_URI_COLUMNS:
        name = f"{table}.{column}"
        if table not in tables or column not in {c["name"] for c in inspector.get_columns(table)}:
            log(f"artifact URIs: no column {name}; skipped")
            continue
        uri = sa.column(column, sa.String)
        under = sa.and_(exact(sa.func.substr(uri, 1, n + 1)) == exact(sa.literal(root + "/")),
                        sa.func.substr(uri, n + 2, 1) != "/")
        matches = sa.or_(exact(uri) == exact(sa.literal(root)), under)
        rewritten = sa.literal(PROXY_ROOT) + sa.func.substr(uri, n + 2)  # '||' or CONCAT by dialect
        result = conn.execute(sa.update(sa.table(table, uri)).where(matches).values({column: rewritten}))
        counts[name] = result.rowcount
    return counts


def rewrite_legacy_artifact_uris(values: Mapping[str, str], config: Config) -> dict[str, int]:
    """rewrite_artifact_uris on the tracking database, in one transaction under a server-wide lock."""
    import sqlalchemy as sa

    destination = artifacts_destination(values["mlflow/artifact_bucket"], config.artifacts_prefix)
    engine = sa.create_engine(backend_store_uri(values, config), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:  # closed (NullPool): the session ends and the lock with it
            server_lock(conn, config.db_engine, "mlflow_artifact_uris", PG_URI_LOCK)
            counts = rewrite_artifact_uris(conn, destination)
            conn.commit()
    finally:
        engine.dispose()
    for name, count in counts.items():
        log(f"artifact URIs: {count} rows of {name} rewritten from {destination}/ to {PROXY_ROOT}")
    return counts


SCHEMA_TOO_NEW = 78  # exit status (EX_CONFIG): this MLflow is older than the database schema


def unknown_schema_revision(uri: str) -> str | None:
    """The tracking schema's revision when the installed MLflow does not know it (a newer MLflow
    migrated the database: starting would run an old server on a newer schema); else None (a known
    revision, or a database without a schema yet)."""
    import sqlalchemy
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError
    from mlflow.store.db.utils import _get_alembic_config

    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sqlalchemy.inspect(conn).has_table("alembic_version"):
                return None
            revision = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    if revision is None:
        return None
    try:
        known = ScriptDirectory.from_config(_get_alembic_config(uri)).get_revision(revision)
    except CommandError:
        known = None
    return None if known is not None else revision


def public_hosts(values: Mapping[str, str]) -> list[str]:
    hosts = [h.strip().lower() for h in values["mlflow/allowed_hosts"].split(",")]
    return [h for h in dict.fromkeys(hosts) if h]


def allowed_hosts(hosts: list[str]) -> str:
    names = list(hosts) + [h for h in LOCAL_HOSTS if h not in hosts]
    return ",".join(n for host in names for n in (host, f"{host}:*"))


def cors_origins(hosts: list[str]) -> str:
    return ",".join(f"{scheme}://{host}" for host in hosts for scheme in ("https", "http"))


def serving_processes(cpus: int, memory: int) -> int:
    """API workers for a machine: one per vCPU (each runs Python on one core; two per vCPU measured
    no faster), capped by memory (API_WORKER_MEMORY each after RESERVED_MEMORY and both servers'
    own); at least 1. The synth calls it with the instance type's figures (modules/instance_types.py)."""
    by_memory = (memory - RESERVED_MEMORY - UI_SERVER_MEMORY - API_SERVER_MEMORY) // API_WORKER_MEMORY
    return max(1, min(cpus, by_memory))


def worker_environment() -> None:
    """In a serving process, before MLflow makes its engines: replace
    MLFLOW_SQLALCHEMYSTORE_POOLCLASS=NullPool, which the launcher sets for the `mlflow server` parent
    (its store checks then keep no idle connection), by the pool sizes (WORKER_POOL_VARIABLES)."""
    os.environ.pop("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", None)
    for staged, variable in WORKER_POOL_VARIABLES.items():
        if staged in os.environ:
            os.environ[variable] = os.environ.pop(staged)


def post_fork(server, worker) -> None:  # gunicorn's hook signature
    """gunicorn's hook in each API worker (the API server runs with ``--config`` this file), before
    the worker loads MLflow's app."""
    worker_environment()


def serving_loop():
    """uvicorn's event loop factory in the UI server (``--loop launcher:serving_loop``).

    A plain asyncio loop whose first task sets anyio's default thread limiter, through which the
    Flask app runs, to MLFLOW_REQUEST_THREADS tokens (default 40). Requests beyond it wait in the
    loop without holding a database connection. uvicorn imports the app after making the loop, so
    worker_environment applies to its engines.
    """
    import asyncio

    worker_environment()
    threads = int(os.environ.get(REQUEST_THREADS_VARIABLE, "0") or 0)
    loop = asyncio.new_event_loop()
    if threads > 0:
        async def limit_threads() -> None:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = threads

        _TASKS.add(loop.create_task(limit_threads()))  # referenced until it has run
    return loop


def server_environment(values: Mapping[str, str], base: Mapping[str, str], config: Config,
                       auth_config_path: str | None = None) -> dict[str, str]:
    """The environment of both ``mlflow server`` processes: ``base`` plus their configuration."""
    env = {k: v for k, v in base.items() if not k.startswith(ENV_PREFIX)}
    hosts = public_hosts(values)
    env["MLFLOW_BACKEND_STORE_URI"] = backend_store_uri(values, config)
    env["MLFLOW_ARTIFACTS_DESTINATION"] = artifacts_destination(values["mlflow/artifact_bucket"],
                                                                config.artifacts_prefix)
    env["MLFLOW_SERVE_ARTIFACTS"] = "true"
    env["MLFLOW_SERVER_ALLOWED_HOSTS"] = allowed_hosts(hosts)
    env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"] = cors_origins(hosts)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env.setdefault("MLFLOW_HOST", "127.0.0.1")
    for variable in ("MLFLOW_PORT", "MLFLOW_WORKERS"):
        env.pop(variable, None)  # on the command lines (ui_argv, api_argv)
    env["MLFLOW_WORKER_POOL_SIZE"] = str(POOL_SIZE)  # MLFLOW_SQLALCHEMYSTORE_* in the serving processes
    env["MLFLOW_WORKER_MAX_OVERFLOW"] = str(MAX_OVERFLOW)
    for variable in WORKER_POOL_VARIABLES.values():
        env.pop(variable, None)
    env["MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE"] = str(POOL_RECYCLE_SECONDS)
    env["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"  # for the parents only: worker_environment drops it
    env[REQUEST_THREADS_VARIABLE] = str(UI_THREADS)
    if values.get("cache/endpoint") and values.get("cache/port"):
        cache = f'rediss://{values["cache/endpoint"]}:{int(values["cache/port"])}/0'
        env["MLFLOW_GATEWAY_BUDGET_REDIS_URL"] = cache
    env.pop("MLFLOW_AUTH_ADMIN_USERNAME", None)
    # Activates db_password_hook in the server's processes: new connections read the password from SSM.
    env[DB_PASSWORD_HOOK_VARIABLE] = config.ssm_names["db/password"]
    if config.auth:
        if not auth_config_path:
            raise ValueError("auth is on: the server needs the path of basic_auth.ini")
        env["MLFLOW_AUTH_CONFIG_PATH"] = auth_config_path
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = values["mlflow/admin_password"]
        env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = values["mlflow/flask_secret_key"]
    return env


MLFLOW_SERVER = ("-m", "mlflow", "server")  # after the interpreter in ui_argv and api_argv


def _mlflow_server(config: Config, port: int) -> list[str]:
    return ([sys.executable, *MLFLOW_SERVER, "--port", str(port)]
            + (["--app-name", "basic-auth"] if config.auth else []))


def ui_argv(config: Config) -> list[str]:
    """The UI server: uvicorn, one worker, its event loop from serving_loop. No access log in either
    server: nginx's has every request, with the upstream's time."""
    here = os.path.dirname(os.path.abspath(__file__))
    loop = f"{os.path.splitext(os.path.basename(__file__))[0]}:serving_loop"
    return [*_mlflow_server(config, config.ui_port),
            "--workers", "1", "--uvicorn-opts", f"--app-dir {here} --loop {loop} --no-access-log"]


def api_argv(config: Config, workers: int) -> list[str]:
    """The API server: gunicorn, ``workers`` sync workers, this file as its config (post_fork)."""
    opts = (f"--config {os.path.abspath(__file__)} --worker-class sync --timeout {API_TIMEOUT} "
            f"--graceful-timeout {RESTART_SECONDS * 5}")
    return [*_mlflow_server(config, config.api_port), "--workers", str(workers), "--gunicorn-opts", opts]


def supervise(servers: list[tuple[str, list[str], dict[str, str]]]) -> None:
    """Each (name, argv, env) server until SIGTERM/SIGINT; one that exits restarts after RESTART_SECONDS."""
    import signal
    import subprocess
    import time

    stopping = False
    procs: dict[int, subprocess.Popen] = {}

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    due: dict[int, float] = dict.fromkeys(range(len(servers)), 0.0)  # server -> when to start it
    while not stopping:
        now = time.monotonic()
        for i, when in list(due.items()):
            if when <= now and not stopping:
                _name, argv, env = servers[i]
                procs[i] = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)  # noqa: S603
                del due[i]
        for i, proc in procs.items():
            if i not in due and proc.poll() is not None and not stopping:
                log(f"{servers[i][0]} exited with {proc.returncode}; starting it again in {RESTART_SECONDS}s")
                due[i] = time.monotonic() + RESTART_SECONDS
        time.sleep(0.5)
    for proc in procs.values():
        try:
            proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(environ: Mapping[str, str] | None = None) -> None:
    environ = dict(os.environ if environ is None else environ)
    config = Config.from_environ(environ)

    import boto3

    values = read_parameters(boto3.client("ssm", region_name=config.region), config)
    auth_ini = None
    if config.auth:
        run_dir = environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or config.state_dir
        auth_ini = os.path.join(run_dir, "basic_auth.ini")
        write_private(auth_ini, auth_config(values, config))
    env = server_environment(values, environ, config, auth_ini)
    auth = (f"on (admin {config.admin_username!r}, database {config.auth_db_name})"
            if config.auth else "OFF")
    plan = config.serving_plan
    capped = (f" (of {plan.wanted} asked: the budget of {config.db_connections} database connections "
              f"fits {plan.api_workers})" if plan.api_workers < plan.wanted else "")
    log(f"database {config.db_engine} at {values['db/host']}:{values['db/port']}, "
        f"artifacts {env['MLFLOW_ARTIFACTS_DESTINATION']}, auth {auth}; UI server on port {config.ui_port} "
        f"({UI_THREADS} request at once), API server on port {config.api_port} with {plan.api_workers} "
        f"workers{capped}; pools of {POOL_SIZE} + {MAX_OVERFLOW} per engine")

    import mlflow
    # The launcher's own engines release their connections at once: none stays open while serving.
    os.environ["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] = "NullPool"
    from mlflow.db import upgrade

    newer = unknown_schema_revision(env["MLFLOW_BACKEND_STORE_URI"])
    if newer:
        log(f"refusing to start: the database schema is at revision {newer}, which MLflow "
            f"{mlflow.__version__} does not know (a newer MLflow migrated it); set mlflow_version "
            "to the release that did, or newer")
        sys.exit(SCHEMA_TOO_NEW)
    log("upgrading the database schema")
    upgrade.main([env["MLFLOW_BACKEND_STORE_URI"]], standalone_mode=False)
    if config.rewrite_legacy_artifact_uris:
        log(f"rewriting artifact URIs under {env['MLFLOW_ARTIFACTS_DESTINATION']}/ to {PROXY_ROOT}")
        rewrite_legacy_artifact_uris(values, config)
    if config.auth:
        log("preparing the auth store")
        prepare_auth_store(values, config)
    servers = []
    for name, argv in ((f"the UI server (port {config.ui_port})", ui_argv(config)),
                       (f"the API server (port {config.api_port}, {plan.api_workers} workers)",
                        api_argv(config, plan.api_workers))):
        command = server_command(argv[1 + len(MLFLOW_SERVER):], env)
        if command is None:
            log(f"{name}: MLflow {mlflow.__version__}'s CLI does not start its server through "
                "mlflow.server._exec_cmd; running `mlflow server` as its parent")
            command = (argv, env)
        servers.append((name, *command))
    log("starting " + " and ".join(name for name, _argv, _env in servers))
    exec_supervisor(servers)


class _Started:
    """Stands in for the process `mlflow server` would start: its CLI forwards signals to it and
    waits for it."""

    pid = returncode = 0

    def poll(self) -> int:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def send_signal(self, signum: int) -> None:
        pass


def server_command(args: list[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]] | None:
    """The command line and environment ``mlflow server ARGS`` (environment ``env``) would start
    its uvicorn or gunicorn with. MLflow's own CLI runs in a fork of this process, which has
    imported MLflow already: its checks, the store initialization and the auth bootstrap run there
    as in a fresh `mlflow server`, and the process it would start is captured instead of started.
    So no `mlflow server` parent stays resident (each cost 284 MiB and 4 CPU seconds of imports).
    The fork imports ``mlflow.server`` and its submodules afresh, under ``env``: they read their
    configuration when imported (the auth app's ``basic_auth.ini``, for one).
    None when this MLflow's CLI does not start it through ``mlflow.server._exec_cmd``; exits with
    the CLI's status when the CLI fails (its own message is in the log)."""
    import json
    import traceback

    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the fork: `mlflow server` up to the start of its server
        status = 1
        try:
            os.close(read_end)
            os.environ.clear()
            os.environ.update(env)
            for name in [name for name in sys.modules if name.split(".")[:2] == ["mlflow", "server"]]:
                del sys.modules[name]
            import mlflow.server
            from mlflow.cli import server

            captured: list[tuple[list[str], dict[str, str]]] = []

            def capture(cmd, *_args, extra_env=None, **_kwargs) -> _Started:
                captured.append(([str(part) for part in cmd], {**os.environ, **(extra_env or {})}))
                return _Started()

            if callable(getattr(mlflow.server, "_exec_cmd", None)):
                mlflow.server._exec_cmd = capture
                server.main(args=list(args), prog_name="mlflow server", standalone_mode=False)
            with os.fdopen(write_end, "wb") as out:
                out.write(json.dumps(captured).encode())
            status = 0
        except SystemExit as exited:
            status = exited.code if isinstance(exited.code, int) else 1
        except BaseException:  # reported; the status says it failed
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as source:
        data = source.read()
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        log(f"`mlflow server {' '.join(args[:2])} ...` failed with status {code}")
        sys.exit(code or 1)
    captured = json.loads(data)
    return (captured[0][0], captured[0][1]) if len(captured) == 1 else None


def exec_supervisor(servers: list[tuple[str, list[str], dict[str, str]]]) -> None:
    """Replace this process (systemd keeps its PID) with ``supervise`` in a fresh interpreter that
    imports only the standard library, so the preparation's imports (MLflow, SQLAlchemy, boto3)
    do not stay resident. The servers' command lines and environments, secrets among them, pass
    through an anonymous memory file (memfd), never a file system."""
    import json

    fd = os.memfd_create("mlflow-serving", 0)  # no close-on-exec: the supervisor reads it
    with os.fdopen(os.dup(fd), "wb") as out:
        out.write(json.dumps(servers).encode())
    os.lseek(fd, 0, os.SEEK_SET)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), SUPERVISE_FLAG, str(fd)])  # noqa: S606


def supervise_from(fd: int) -> None:
    """The supervisor's entry (``exec_supervisor``): the servers from the memory file ``fd``."""
    import json

    with os.fdopen(fd, "rb") as source:  # closed before any server starts: they do not inherit it
        servers = [(name, argv, env) for name, argv, env in json.loads(source.read())]
    supervise(servers)


if __name__ == "__main__":
    if sys.argv[1:2] == [SUPERVISE_FLAG]:
        supervise_from(int(sys.argv[2]))
    else:
        main()
