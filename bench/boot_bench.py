"""Boot benchmark of an MLflow instance's install and start (prints figures; not a test).

One run, four scenarios, each from an empty venv to the first ``/health`` 200
through nginx, on this machine (as root, with .ci/install-runtime-deps):

* ``lock``: the bundle's install-venv.sh (uv from its hash lock, then every
  wheel of the MLflow lock hash-checked, bytecode compiled), as instances do;
* ``unpinned``: the previous way, ``pip install 'mlflow[auth]==V' boto3 redis
  psycopg2-binary`` into a fresh venv (pip compiles bytecode too);

each with a cold cache (empty uv/pip cache directory) and then a warm one
(the same directory again); then, for comparison, the lock without compiling
bytecode at install (the service cannot write .pyc files, so every process
then compiles what it imports). Every scenario boots the bundle's launcher against
its own fresh PostgreSQL database (so each start migrates an empty schema) with
S3 and SSM from moto, and nginx with the rendered site. The MLflow server's
peak RSS is the largest VmHWM of its processes and their sum.

This is not an EC2 instance: dnf, cloud-init, the NAT and EBS add to a real
boot; see docs/runtime.md for how the figures feed the grace period.

    sudo .venv/bin/python bench/boot_bench.py
"""
from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "runtime")]

import modules  # noqa: E402,F401  (Node selection, lazy provider import)
from modules.mlflow_instance import NGINX_SITE_PATH, UNIT_PATH, BootstrapInputs, build_bundle  # noqa: E402
from runtime_helpers import (  # noqa: E402
    NGINX_BIN,
    Moto,
    Postgres,
    Service,
    extract,
    free_port,
    http_status,
    make_tls,
    missing_tools,
    run,
    wait_until,
)

VERSION = "3.17.2"
PYTHON = getattr(sys, "_base_executable", None) or shutil.which("python3.11") or sys.executable
UNPINNED = [f"mlflow[auth]=={VERSION}", "boto3", "redis", "psycopg2-binary"]
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def clean_env(**extra: str) -> dict[str, str]:
    """This machine's pip settings (local wheel folders) left out: the index only, as on an instance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines()
                if line.strip() and not line.startswith("#"))


def unit_environment(unit: str) -> dict[str, str]:
    env = {}
    for line in unit.splitlines():
        if line.startswith("Environment="):
            name, _, value = line[len("Environment="):].partition("=")
            env[name] = value
    return env


def group_memory(service: Service) -> list[int]:
    """VmHWM (peak RSS, shared pages included) of each of the service's processes, in KiB, largest first."""
    peaks = []
    for pid in service.group_pids():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]))
    return sorted(peaks, reverse=True)


def nginx_conf(directory: Path, site: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    d = directory
    conf.write_text(
        "daemon off;\nmaster_process on;\nworker_processes 1;\n"
        f"pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
        "events { worker_connections 128; }\nhttp {\n"
        f"    access_log {d}/access.log;\n    client_body_temp_path {d}/client_body;\n"
        f"    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n"
        f"    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    include {site};\n}}\n"
    )
    return conf


class Bench:
    def __init__(self, base: Path):
        self.base = base
        self.tls = make_tls(base / "tls")
        self.moto = Moto(base / "moto.log")
        self.pg = Postgres(base / "postgres", self.tls)
        self.services: list[Service] = []

    def __enter__(self) -> Bench:
        self.moto.start()
        self.pg.start()
        self.moto.client("s3").create_bucket(Bucket="mlflow-boot-bench")
        return self

    def __exit__(self, *exc) -> None:
        for service in reversed(self.services):
            service.stop()
        self.pg.stop()
        self.moto.stop()

    def database(self, name: str) -> None:
        import psycopg2
        from psycopg2 import sql

        conn = psycopg2.connect(host=str(self.pg.dir), port=self.pg.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(self.pg.user)))
        conn.close()

    def scenario(self, n: int, how: str, cache: Path) -> dict:
        work = self.base / f"s{n}-{how}"
        inputs = BootstrapInputs(
            region="us-east-1", ssm_prefix=f"/bench/s{n}", log_group_mlflow="/bench/mlflow",
            log_group_nginx="/bench/nginx", log_group_system="/bench/system", mlflow_version=VERSION,
            db_engine="postgres", metrics_namespace="MLflow/bench", mlflow_port=free_port(),
            http_port=free_port(), workers=0, state_dir=str(work / "state"), log_dir=str(work / "log"),
            ca_bundle_path=str(self.tls.ca_cert), auth_db_name=f"mlflow_auth_{n}",
        )
        bundle = build_bundle(inputs)
        files = extract(bundle, work / "bundle")
        root = files / "files"
        self.database(f"mlflow_{n}")
        ssm = self.moto.client("ssm")
        values = {
            "db/host": self.pg.host, "db/port": str(self.pg.port), "db/name": f"mlflow_{n}",
            "db/username": self.pg.user, "db/password": self.pg.password,
            "mlflow/artifact_bucket": "mlflow-boot-bench", "mlflow/allowed_hosts": "mlflow.bench.test",
            "mlflow/admin_password": "BenchAdmin0123456789", "mlflow/flask_secret_key": "BenchFlask0123456789",
        }
        for key, name in inputs.parameter_names.items():
            if key in values:
                ssm.put_parameter(Name=name, Value=values[key], Type="SecureString", Overwrite=True)
        for d in (inputs.state_dir, inputs.log_dir, work / "run"):
            Path(d).mkdir(parents=True, exist_ok=True)
        site = root / NGINX_SITE_PATH.lstrip("/")
        nginx = Service("nginx", [NGINX_BIN, "-c", str(nginx_conf(work / "nginx", site)),
                                  "-p", str(work / "nginx"), "-e", str(work / "nginx" / "error.log")],
                        work / "nginx" / "stdout.log")
        self.services.append(nginx)
        nginx.start()
        health = f"http://127.0.0.1:{inputs.http_port}/health"
        wait_until(lambda: http_status(health) == 502, "nginx", 20, nginx)

        # --- from an empty venv ----------------------------------------------------------
        opt = work / "opt"
        started = time.monotonic()
        if how.startswith("lock"):
            script = files / "install-venv.sh"
            if how == "lock-no-pyc":  # for comparison only: what compiling the bytecode at install buys
                script.write_text(script.read_text().replace(" --compile-bytecode", ""))
            run(["bash", str(script), PYTHON, str(opt)],
                env=clean_env(UV_CACHE_DIR=str(cache / "uv"), PIP_CACHE_DIR=str(cache / "pip")))
        else:
            run([PYTHON, "-m", "venv", str(opt / "venv")])
            run([str(opt / "venv" / "bin" / "pip"), "install", "--quiet", *UNPINNED],
                env=clean_env(PIP_CACHE_DIR=str(cache / "pip")))
        installed = time.monotonic()

        unit = (root / UNIT_PATH.lstrip("/")).read_text()
        env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", **unit_environment(unit),
               **env_file(root / inputs.launcher_env_path.lstrip("/")),
               "RUNTIME_DIRECTORY": str(work / "run"), "AWS_ENDPOINT_URL": self.moto.endpoint,
               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        launcher = Service(f"mlflow s{n}", [str(opt / "venv" / "bin" / "python"),
                                            str(root / inputs.launcher_path.lstrip("/"))],
                           work / "mlflow.log", env=env, cwd=Path(inputs.state_dir))
        self.services.append(launcher)
        launcher.start()
        wait_until(lambda: http_status(health) == 200, f"MLflow through nginx ({how})", 300, launcher)
        healthy = time.monotonic()
        # A few seconds of settling and requests, so every worker has loaded what it serves.
        api = f"http://127.0.0.1:{inputs.http_port}/api/2.0/mlflow/experiments/search?max_results=5"
        token = base64.b64encode(f"admin:{values['mlflow/admin_password']}".encode()).decode()
        headers = {"Host": "mlflow.bench.test", "Authorization": f"Basic {token}"}
        for _ in range(20):
            http_status(api, headers)
            time.sleep(0.25)
        peaks = group_memory(launcher)
        launcher.stop()
        nginx.stop()
        venv_mb = sum(f.stat().st_size for f in (opt / "venv").rglob("*") if f.is_file()) / 1e6
        return {"install": installed - started, "boot": healthy - installed, "total": healthy - started,
                "peaks": peaks, "venv_mb": venv_mb}


def main() -> int:
    problems = missing_tools()
    if problems:
        print("boot bench needs the runtime tier's tools: " + "; ".join(problems), file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="mlflow-boot-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory
    cpus = os.cpu_count()
    print(f"boot bench: MLflow {VERSION}, {Path(PYTHON).name} "
          f"{run([PYTHON, '-c', 'import platform; print(platform.python_version())']).stdout.strip()}, "
          f"{cpus} CPUs; PostgreSQL 15 + moto + nginx on loopback; each row from an empty venv")
    rows = []
    try:
        with Bench(base) as bench:
            n = 0
            plan = [("lock", "cold"), ("lock", "warm"), ("unpinned", "cold"), ("unpinned", "warm"),
                    ("lock-no-pyc", "warm")]
            for how, state in plan:
                n += 1
                cache = base / f"cache-{how.removesuffix('-no-pyc')}"
                result = bench.scenario(n, how, cache)
                rows.append((how, state, result))
                print(f"  {how:<11} {state} cache: install {result['install']:5.1f} s + boot "
                      f"{result['boot']:4.1f} s = {result['total']:5.1f} s to /health 200; peak RSS per "
                      f"process MiB {[round(k / 1024) for k in result['peaks']]}", flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print()
    print("| install | cache | install s | launcher start to /health 200 s | empty venv to /health 200 s "
          "| server processes | peak RSS largest process MiB | peak RSS sum MiB | venv MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for how, state, r in rows:
        label = {"lock": "hash lock (uv, --require-hashes)", "unpinned": "unpinned pip (previous way)",
                 "lock-no-pyc": "hash lock, no bytecode compiled (comparison)"}[how]
        print(f"| {label} | {state} | {r['install']:.1f} | {r['boot']:.1f} | {r['total']:.1f} | "
              f"{len(r['peaks'])} | {r['peaks'][0] / 1024:.0f} | {sum(r['peaks']) / 1024:.0f} | "
              f"{r['venv_mb']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
