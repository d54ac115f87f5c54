"""The database password hook's cache and retry logic (modules/mlflow_instance/db_password_hook.py).

Pure: a fake SSM read and a fake clock. The runtime tier (tests/runtime/test_rotation_runtime.py)
runs the hook in MLflow's server against real databases.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modules.mlflow_instance import db_password_hook as H
from modules.mlflow_instance import launcher as L

HOOK = Path(H.__file__)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeSSM:
    def __init__(self, value):
        self.value, self.reads, self.down = value, 0, False

    def __call__(self):
        self.reads += 1
        if self.down:
            raise ConnectionError("SSM unreachable")
        return self.value


def cache_for(ssm, clock):
    return H.PasswordCache(ssm, ttl=60, reread_interval=2, clock=clock)


def test_the_seed_stands_in_until_the_ttl_then_ssm_is_read_once_per_ttl():
    ssm, clock = FakeSSM("new"), Clock()
    cache = cache_for(ssm, clock)
    assert cache.current(seed="from-uri") == "from-uri" and ssm.reads == 0
    clock.now += 59
    assert cache.current(seed="from-uri") == "from-uri" and ssm.reads == 0
    clock.now += 1
    assert cache.current(seed="from-uri") == "new" and ssm.reads == 1
    clock.now += 30
    assert cache.current(seed="from-uri") == "new" and ssm.reads == 1


def test_a_failure_reads_ssm_at_once_but_not_more_than_once_per_interval():
    ssm, clock = FakeSSM("old"), Clock()
    cache = cache_for(ssm, clock)
    assert cache.current(seed="old") == "old"
    ssm.value = "new"
    assert cache.after_failure("old") == ["new"] and ssm.reads == 1
    clock.now += 1
    assert cache.after_failure("new") == [] and ssm.reads == 1  # within the interval: no read
    clock.now += 1
    assert cache.after_failure("new") == [] and ssm.reads == 2


def test_ssm_unreachable_keeps_the_last_value():
    ssm, clock = FakeSSM("old"), Clock()
    cache = cache_for(ssm, clock)
    cache.current(seed="old")
    ssm.down = True
    clock.now += 120
    assert cache.current() == "old" and ssm.reads == 1
    clock.now += 1
    assert cache.current() == "old" and ssm.reads == 1  # no new attempt within the interval
    clock.now += 1
    assert cache.current() == "old" and ssm.reads == 2
    ssm.down, ssm.value = False, ""  # an empty value is not taken either
    clock.now += 2
    assert cache.current() == "old"


def attempt_against(db_password, log):
    def attempt(password):
        log.append(password)
        if password != db_password:
            raise PermissionError("password authentication failed")
        return f"connection with {password}"
    return attempt


def test_connect_after_the_database_changed_retries_with_the_new_ssm_value():
    ssm, clock = FakeSSM("old"), Clock()
    cache = cache_for(ssm, clock)
    tried = []
    assert H.connect(cache, attempt_against("old", tried), seed="old") == "connection with old"
    ssm.value = "new"
    assert H.connect(cache, attempt_against("new", tried), seed="old") == "connection with new"
    assert tried == ["old", "old", "new"]
    assert (cache.value, cache.last_good) == ("new", "new")
    tried.clear()
    assert H.connect(cache, attempt_against("new", tried), seed="old") == "connection with new"
    assert tried == ["new"]  # no failure once the cache holds the new value


def test_connect_falls_back_to_the_last_good_password_when_ssm_is_ahead_of_the_database():
    ssm, clock = FakeSSM("old"), Clock()
    cache = cache_for(ssm, clock)
    H.connect(cache, attempt_against("old", []), seed="old")
    ssm.value = "new"  # SSM written first, the database still on the old password
    clock.now += 60
    tried = []
    assert H.connect(cache, attempt_against("old", tried)) == "connection with old"
    assert tried == ["new", "old"]


def test_connect_raises_the_first_failure_when_every_candidate_fails():
    ssm, clock = FakeSSM("old"), Clock()
    cache = cache_for(ssm, clock)
    H.connect(cache, attempt_against("old", []), seed="old")
    ssm.value = "other"
    tried = []
    with pytest.raises(PermissionError):
        H.connect(cache, attempt_against("third", tried))
    assert tried == ["old", "other"]  # the new value, then last good ("old") already tried
    assert cache.last_good == "old"


def test_inert_without_its_variable_and_the_launcher_sets_it():
    assert H.activate({}) is None
    assert L.DB_PASSWORD_HOOK_VARIABLE == H.ENV_PARAMETER


def test_ruff_passes_on_the_hook():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(HOOK)],
                            capture_output=True, text=True, cwd=HOOK.parent)
    assert result.returncode == 0, result.stdout + result.stderr
