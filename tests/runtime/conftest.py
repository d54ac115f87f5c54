"""Fixtures of the runtime tier: real nginx, PostgreSQL, MariaDB and moto, all
private to the test run, on 127.0.0.1 and free ports, stopped by process group.

Needs root and the packages of .ci/install-runtime-deps. Without them the
runtime tests skip, except under CI (``CI`` set), where they fail.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

# pytest.ini's pythonpath holds the repository and this folder (for runtime_helpers).
HERE = Path(__file__).resolve().parent

from runtime_helpers import MariaDB, Moto, Postgres, extract, make_tls, missing_tools, run  # noqa: E402


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
    parent = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=base_dir))
    parent.chmod(0o755)  # the postgres user must reach its data directory
    directory = parent / "server"
    server = {"postgres": Postgres, "mysql": MariaDB}[engine](directory, tls)
    request.addfinalizer(server.stop)  # before start(): a half-started server is stopped too
    server.start()
    return server



# The interpreter the locked venvs are made with (the instance's is AL2023's python3.11).
BASE_PYTHON = getattr(sys, "_base_executable", None) or shutil.which("python3.11") or sys.executable
UV = str(Path(sys.executable).parent / "uv")  # the dev package (Pipfile)
AWSCLI = "awscli==1.46.2"  # only when the machine has no `aws`


# The members of a bundle that make MLflow's venv: the same ones make the same venv.
VENV_INPUTS = ("requirements.txt", "uv.txt", "install-venv.sh", "db_password_hook.py")


@pytest.fixture(scope="session")
def locked_venv(shared_dir):
    """venv_for(bundle) -> MLflow's venv, made by the bundle's own install-venv.sh from the bundle's lock.

    As on an instance: uv from its hash lock, then every wheel of the MLflow lock
    checked against its sha256 (--require-hashes --no-deps, wheels only). One
    venv per lock and test run, shared by the xdist workers (``shared_dir``): the
    first worker to need it installs it under a file lock, the others wait. Tests
    only read it. uv's cache (UV_CACHE_DIR, else ~/.cache/uv) keeps later runs fast.
    """
    def venv_for(bundle) -> Path:
        key = hashlib.sha256(b"".join(bundle.members[name] for name in VENV_INPUTS)).hexdigest()[:16]
        where = shared_dir / f"venv-{key}"
        with open(shared_dir / f"venv-{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (where / "installed").exists():
                shutil.rmtree(where, ignore_errors=True)
                files = extract(bundle, where / "bundle")
                started = time.monotonic()
                run(["bash", str(files / "install-venv.sh"), BASE_PYTHON, str(where)])
                (where / "installed").write_text("")
                print(f"\nlocked venv ({bundle.members['requirements.txt'].splitlines()[0].decode()}) "
                      f"installed in {time.monotonic() - started:.1f}s")
        return where / "venv"

    return venv_for


@pytest.fixture(scope="session")
def aws_cli(base_dir) -> str:
    """The AWS CLI the user data calls: the machine's, else AWS CLI v1 in a venv of its own."""
    found = shutil.which("aws")
    if found:
        return found
    venv = base_dir / "awscli"
    run([UV, "venv", "--quiet", "--python", BASE_PYTHON, str(venv)])
    run([UV, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), AWSCLI])
    return str(venv / "bin" / "aws")
