"""Fixtures of the emulator tier: a private moto server per test, with the
extensions of moto_extensions.py, on 127.0.0.1 and a port the server binds
itself (port 0, reported in a file), in its own process group, stopped by that
group in a finalizer. Nothing is shared between tests (port, log, working
directory), so the tier can run under pytest-xdist.

Needs the terraform CLI and the offline provider mirror (tests/support.py);
without them the tier skips, except under CI (``CI`` set), where it fails.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

from tests.support import PLUGIN_MIRROR  # noqa: E402

# Moto settings of the tier (environment of the server process):
MOTO_ENV = {
    # AttachRolePolicy of AWS managed policies (AmazonRDSEnhancedMonitoringRole; the HCL
    # fixture's AmazonSSMManagedInstanceCore) needs
    # moto's copy of the AWS managed policies (off by default in moto).
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    # Stricter than moto's default, like AWS: an instance needs an AMI that
    # exists (after resolve:ssm:) and a key pair that exists.
    "MOTO_ENABLE_AMI_VALIDATION": "true",
    "MOTO_ENABLE_KEYPAIR_VALIDATION": "true",
}

@pytest.fixture(scope="session")
def emulator_tools():
    problems = []
    if not (shutil.which("terraform") or Path("/usr/local/bin/terraform").exists()):
        problems.append("terraform CLI not found")
    if not any(PLUGIN_MIRROR.glob("registry.terraform.io/hashicorp/aws/*")):
        problems.append(f"no hashicorp/aws provider in the offline mirror {PLUGIN_MIRROR}")
    try:
        import moto  # noqa: F401
        import cryptography  # noqa: F401
    except ImportError as e:
        problems.append(f"{e.name} not installed in the venv")
    if problems:
        message = "emulator tier unavailable: " + "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class MotoServer:
    pid: int
    port: int
    log: Path
    proc: subprocess.Popen = field(repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mb(self) -> float:
        """Peak resident set size of the server so far (VmHWM), MiB."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def client(self, service: str):
        import boto3

        return boto3.client(
            service, endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="emulator", aws_secret_access_key="emulator",
        )


def start_moto(log: Path, timeout: float = 60, env: dict[str, str] | None = None) -> MotoServer:
    """Start the extended moto server in its own process group; return once it listens.

    The server binds port 0 and writes the port it got to ``<log>.port``; env
    adds to the server's environment (e.g. EMULATOR_FAULT, see server.py).
    """
    port_file = log.with_name(log.name + ".port")
    port_file.unlink(missing_ok=True)
    env = {**os.environ, **MOTO_ENV, "PYTHONPATH": str(ROOT), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.emulator.server", str(port_file)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():  # written once the socket listens
            return MotoServer(pid=proc.pid, port=int(port_file.read_text()), log=log, proc=proc)
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        time.sleep(0.1)
    stop_moto(MotoServer(pid=proc.pid, port=0, log=log, proc=proc))
    raise RuntimeError(f"moto server did not listen within {timeout}s:\n{log.read_text()[-4000:]}")


def stop_moto(server: MotoServer) -> None:
    """Stop the server's process group (its pid is the group id), SIGKILL after 10 s."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.proc.wait(timeout=10)


@pytest.fixture
def moto_server(emulator_tools, tmp_path, request):
    """A fresh extended moto server for one test."""
    server = start_moto(tmp_path / "moto.log")
    request.addfinalizer(lambda: stop_moto(server))
    return server


@pytest.fixture
def record_emulator_result(request):
    """Record one configuration's measurements for the summary at the end."""
    return lambda result: request.node.user_properties.append(("emulator_result", result))  # tests/conftest.py


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, the emulator's last calls and its refusals, counted (server.py logs one line
    per call): a retried refusal behind a hang shows up as one line with a large count."""
    outcome = yield
    report = outcome.get_result()
    server = item.funcargs.get("moto_server") if hasattr(item, "funcargs") else None
    if not report.failed or server is None or not server.log.exists():
        return
    from collections import Counter

    lines = server.log.read_text(errors="replace").splitlines()
    calls = [line.split(" ", 1)[1] for line in lines if line[:2].isdigit() and line[2:3] == ":"]
    refusals = Counter(c for c in calls if c.split()[1:2] and c.split()[1] >= "400")
    text = "refusals (count, call, status, code):\n" + "\n".join(
        f"{n:6} {c}" for c, n in refusals.most_common(15)) + "\nlast calls:\n" + "\n".join(lines[-30:])
    report.sections.append(("emulator log", text))
