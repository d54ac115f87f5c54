"""Fixtures of the runtime tier: real nginx, PostgreSQL, MariaDB and moto, all
private to the test run, on 127.0.0.1 and free ports, stopped by process group.

Needs root and the packages of .ci/install-runtime-deps. Without them the
runtime tests skip, except under CI (``CI`` set), where they fail.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# The repository root (for ``modules``) and this folder (for runtime_helpers),
# whatever pytest's import mode.
HERE = Path(__file__).resolve().parent
for path in (HERE.parents[1], HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from runtime_helpers import MariaDB, Moto, Postgres, make_tls, missing_tools  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "runtime: starts real nginx, PostgreSQL, MariaDB, moto and MLflow locally "
        "(root + .ci/install-runtime-deps)",
    )


@pytest.fixture(scope="session")
def runtime_tools():
    problems = missing_tools()
    if problems:
        message = "runtime tier unavailable: " + "; ".join(problems) + " (run .ci/install-runtime-deps as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def base_dir(runtime_tools):
    # Not under pytest's tmp dir: that is 0700 and the postgres user must
    # reach its data directory.
    path = Path(tempfile.mkdtemp(prefix="mlflow-runtime-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def tls(base_dir):
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    return make_tls(base_dir / "tls")


@pytest.fixture(scope="session")
def moto_server(base_dir):
    server = Moto(base_dir / "moto.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def database(request, base_dir, tls):
    """A private database server of the engine named by the test parameter."""
    engine = request.param
    server = {"postgres": Postgres, "mysql": MariaDB}[engine](base_dir / engine, tls)
    request.addfinalizer(server.stop)  # before start(): a half-started server is stopped too
    server.start()
    return server

