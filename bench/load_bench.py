"""Load benchmark of the instance's serving (prints figures; not a test).

On this machine, as root with the runtime tier's packages (.ci/install-runtime-deps):
PostgreSQL 15 (TLS), S3 and SSM from moto, and MLflow from the bundle's hash lock,
as the runtime tier starts them (tests/runtime/runtime_helpers.py). Two servers on
the same database, one after the other, in each run:

* ``launcher``: the bundle's launcher as mlflow.service runs it (basic auth on),
  behind nginx with the rendered site: the REST API to the API server (gunicorn,
  one sync worker per CPU as far as the connection budget of the default
  settings with db_engine = "postgres" holds, modules/db_budget.py), the rest
  to the UI server (uvicorn);
* ``plain``: ``mlflow server`` with its defaults (4 uvicorn workers, MLflow's
  pools), no nginx, no auth.

Per level (8, 32, 64 concurrent clients, 30 s each, after a 5 s warm-up per
server), every client has its own run and loops: 90 % ``runs/log-batch`` with
10 metrics, 10 % ``runs/search``, over a kept-alive connection. Clients run in
4 processes. Printed per level: requests/s, p50 and p99 latency, errors (any
answer but 200, or no answer), and the most database connections the server
held (pg_stat_activity, sampled each second). ``--runs 3`` repeats everything
and prints the medians and the launcher/plain ratio.

    sudo .venv/bin/python bench/load_bench.py --runs 3
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "runtime"), str(ROOT / "bench")]

import modules  # noqa: E402,F401  (Node selection, lazy provider import)
from boot_bench import PYTHON, clean_env, env_file, unit_environment  # noqa: E402
from modules.mlflow_instance import NGINX_SITE_PATH, UNIT_PATH, BootstrapInputs, build_bundle  # noqa: E402
from modules.mlflow_instance import launcher as L  # noqa: E402
from modules.settings import load_settings  # noqa: E402
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
LEVELS = (8, 32, 64)
CLIENT_PROCESSES = 4
SEARCH_SHARE = 0.1
METRICS_PER_BATCH = 10
HOST = "localhost"  # allowed by both servers
ADMIN_PASSWORD = "LoadBenchAdmin0123456789"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --- the clients -------------------------------------------------------------------

def _client_thread(port: int, headers: dict, run_id: str, experiment_id: str, start: float, stop: float,
                   seed: int, out: list) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    step = 0
    latencies, errors, first_error = [], 0, ""
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < stop:
        if rng.random() < SEARCH_SHARE:
            path, body = "/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment_id], "max_results": 20}
        else:
            step += 1
            now = int(time.time() * 1000)
            path, body = "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": [
                {"key": f"m{i}", "value": rng.random(), "timestamp": now, "step": step}
                for i in range(METRICS_PER_BATCH)]}
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, json.dumps(body), {**headers, "Content-Type": "application/json"})
            reply = conn.getresponse()
            data = reply.read()
            ok = reply.status == 200
            if not ok and not first_error:
                first_error = f"HTTP {reply.status}: {data[:200]!r}"
        except (OSError, http.client.HTTPException) as e:
            ok = False
            first_error = first_error or f"{type(e).__name__}: {e}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        latencies.append(time.perf_counter() - t0)
        errors += not ok
    conn.close()
    out.append((latencies, errors, first_error, time.time()))


def _client_process(port, headers, runs, start, stop, seed, queue) -> None:
    out: list = []
    threads = [threading.Thread(target=_client_thread, args=(port, headers, run_id, experiment_id, start, stop,
                                                             seed * 1000 + i, out))
               for i, (run_id, experiment_id) in enumerate(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(out)


def api(port: int, headers: dict, path: str, body: dict) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, json.dumps(body), {**headers, "Content-Type": "application/json"})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    if reply.status != 200:
        raise RuntimeError(f"{path}: HTTP {reply.status} {data[:300]!r}")
    return json.loads(data)


def level(port: int, headers: dict, clients: int, seconds: float, tag: str, connections) -> dict:
    """`clients` concurrent clients for `seconds`; requests/s, p50, p99 (ms), errors, peak DB connections."""
    experiment = api(port, headers, "/api/2.0/mlflow/experiments/create",
                     {"name": f"load-{tag}-{clients}-{time.time_ns()}"})["experiment_id"]
    runs = [(api(port, headers, "/api/2.0/mlflow/runs/create",
                 {"experiment_id": experiment, "start_time": int(time.time() * 1000)})["run"]["info"]["run_id"],
             experiment) for _ in range(clients)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start = time.time() + 1.0
    stop = start + seconds
    procs = []
    for p in range(CLIENT_PROCESSES):
        share = runs[p::CLIENT_PROCESSES]
        if share:
            procs.append(ctx.Process(target=_client_process, args=(port, headers, share, start, stop, p, queue)))
    for proc in procs:
        proc.start()
    peak = 0
    while time.time() < stop:
        peak = max(peak, connections())
        time.sleep(1)
    results = [r for _ in procs for r in queue.get()]
    for proc in procs:
        proc.join()
    latencies = sorted(x for r in results for x in r[0])
    ended = max(r[3] for r in results)
    errors = sum(r[1] for r in results)
    first = next((r[2] for r in results if r[2]), "")
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0] * 99
    return {"rps": len(latencies) / (ended - start), "p50": q[49] * 1000, "p99": q[98] * 1000,
            "errors": errors, "first_error": first, "db": peak}


# --- the servers -------------------------------------------------------------------

def nginx_conf(directory: Path, site: Path) -> Path:
    """Like the instance's main nginx.conf (worker_processes auto, 1024 connections), paths private."""
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    d = directory
    conf.write_text(
        "daemon off;\nmaster_process on;\nworker_processes auto;\n"
        f"pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n"
        "events { worker_connections 1024; }\nhttp {\n"
        f"    access_log off;\n    client_body_temp_path {d}/client_body;\n"
        f"    proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n"
        f"    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n"
        "    keepalive_timeout 65;\n    keepalive_requests 100000;\n"
        f"    include {site};\n}}\n"
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
        self.moto.client("s3").create_bucket(Bucket="mlflow-load-bench")
        return self

    def __exit__(self, *exc) -> None:
        for service in reversed(self.services):
            service.stop()
        self.pg.stop()
        self.moto.stop()

    def connections(self) -> int:
        """Connections of the MLflow database user right now."""
        import psycopg2

        conn = psycopg2.connect(host=str(self.pg.dir), port=self.pg.port, user="postgres", dbname="postgres")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (self.pg.user,))
                return cur.fetchone()[0]
        finally:
            conn.close()

    def prepare(self) -> None:
        settings = load_settings(None, db_engine="postgres")
        self.budget = settings.db_budget
        cpus, memory = os.cpu_count() or 1, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        self.api_workers = L.serving_processes(cpus, memory)
        work = self.base / "launcher"
        self.inputs = BootstrapInputs(
            region="us-east-1", ssm_prefix="/bench/load", log_group_mlflow="/bench/mlflow",
            log_group_nginx="/bench/nginx", log_group_system="/bench/system", mlflow_version=VERSION,
            db_engine="postgres", metrics_namespace="MLflow/bench", mlflow_port=free_port(),
            http_port=free_port(), workers=self.api_workers, db_connections=self.budget.per_instance,
            state_dir=str(work / "state"), log_dir=str(work / "log"), ca_bundle_path=str(self.tls.ca_cert),
        )
        for i in range(1, L.PORTS):  # the API server's port: hold it like free_port's
            port = self.inputs.mlflow_port + i
            if not _bindable(port):
                raise SystemExit(f"port {port} is taken; run again")
        bundle = build_bundle(self.inputs)
        self.files = extract(bundle, work / "bundle")
        self.root = self.files / "files"
        started = time.monotonic()
        run(["bash", str(self.files / "install-venv.sh"), PYTHON, str(work / "opt")], env=clean_env())
        self.venv = work / "opt" / "venv"
        print(f"locked venv installed in {time.monotonic() - started:.0f} s", flush=True)
        values = {
            "db/host": self.pg.host, "db/port": str(self.pg.port), "db/name": self.pg.name,
            "db/username": self.pg.user, "db/password": self.pg.password,
            "mlflow/artifact_bucket": "mlflow-load-bench", "mlflow/allowed_hosts": "mlflow.bench.test",
            "mlflow/admin_password": ADMIN_PASSWORD, "mlflow/flask_secret_key": "LoadBenchFlask0123456789",
        }
        ssm = self.moto.client("ssm")
        for key, name in self.inputs.parameter_names.items():
            if key in values:
                ssm.put_parameter(Name=name, Value=values[key], Type="SecureString", Overwrite=True)
        for d in (self.inputs.state_dir, self.inputs.log_dir, work / "run"):
            Path(d).mkdir(parents=True, exist_ok=True)
        self.work = work
        config = L.Config(db_engine="postgres", ca_bundle=str(self.tls.ca_cert), region="us-east-1",
                          ssm_names=self.inputs.parameter_names)
        self.uri = L.backend_store_uri(values, config)

    def launcher(self, n: int) -> tuple[list[Service], int, dict]:
        site = self.root / NGINX_SITE_PATH.lstrip("/")
        nginx = Service("nginx", [NGINX_BIN, "-c", str(nginx_conf(self.work / f"nginx-{n}", site)),
                                  "-p", str(self.work / f"nginx-{n}"),
                                  "-e", str(self.work / f"nginx-{n}" / "error.log")],
                        self.work / f"nginx-{n}" / "stdout.log")
        unit = (self.root / UNIT_PATH.lstrip("/")).read_text()
        env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", **unit_environment(unit),
               **env_file(self.root / self.inputs.launcher_env_path.lstrip("/")),
               "RUNTIME_DIRECTORY": str(self.work / "run"), "AWS_ENDPOINT_URL": self.moto.endpoint,
               "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        server = Service("mlflow (launcher)", [str(self.venv / "bin" / "python"),
                                               str(self.root / self.inputs.launcher_path.lstrip("/"))],
                         self.work / "log" / f"launcher-{n}.log", env=env, cwd=Path(self.inputs.state_dir))
        token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        return [nginx, server], self.inputs.http_port, {"Host": HOST, "Authorization": f"Basic {token}"}

    def plain(self, n: int) -> tuple[list[Service], int, dict]:
        port = free_port()
        env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", "HOME": str(self.work / "state")}
        server = Service("mlflow server (plain)", [
            str(self.venv / "bin" / "python"), "-m", "mlflow", "server", "--backend-store-uri", self.uri,
            "--host", "127.0.0.1", "--port", str(port), "--workers", "4",
            "--artifacts-destination", str(self.work / "plain-artifacts")],
            self.work / "log" / f"plain-{n}.log", env=env, cwd=Path(self.inputs.state_dir))
        return [server], port, {"Host": HOST}

    def measure(self, kind: str, n: int, seconds: float) -> dict:
        services, port, headers = getattr(self, kind)(n)
        self.services.extend(services)
        for service in services:
            service.start()
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200, f"{kind} server", 300,
                   services[-1])
        rows = {}
        try:
            level(port, headers, 8, 5, f"{kind}-warmup-{n}", self.connections)
            for clients in LEVELS:
                rows[clients] = level(port, headers, clients, seconds, f"{kind}-{n}", self.connections)
                r = rows[clients]
                print(f"  run {n} {kind:<8} {clients:>2} clients: {r['rps']:6.1f} req/s  p50 {r['p50']:6.1f} ms  "
                      f"p99 {r['p99']:7.1f} ms  errors {r['errors']:>3}  DB connections {r['db']:>3}"
                      + (f"  first error: {r['first_error']}" if r["errors"] else ""), flush=True)
        finally:
            for service in reversed(services):
                service.stop()
        return rows


def _bindable(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat everything; medians are printed")
    parser.add_argument("--seconds", type=float, default=30, help="length of each level")
    args = parser.parse_args()
    problems = missing_tools()
    if problems:
        print("load bench needs the runtime tier's tools: " + "; ".join(problems), file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="mlflow-load-bench-"))
    base.chmod(0o755)  # the postgres user must reach its data directory
    results: dict[str, dict[int, list[dict]]] = {"launcher": {}, "plain": {}}
    try:
        with Bench(base) as bench:
            bench.prepare()
            plan = bench.budget.plan
            print(f"load bench: MLflow {VERSION}, {os.cpu_count()} CPUs, PostgreSQL 15 on loopback (TLS); "
                  f"{args.seconds:.0f} s per level, {int(SEARCH_SHARE * 100)} % runs/search, "
                  f"{100 - int(SEARCH_SHARE * 100)} % log-batch of {METRICS_PER_BATCH} metrics")
            print(f"launcher: nginx -> API server ({plan.api_workers} gunicorn sync workers of "
                  f"{bench.api_workers} asked) and UI server, basic auth on; budget {bench.budget.per_instance} "
                  f"connections per instance (default settings, postgres, {bench.budget.max_connections} "
                  f"max_connections); pools {L.POOL_SIZE} + {L.MAX_OVERFLOW} per engine")
            print("plain:    mlflow server --workers 4 (MLflow's default pools 5 + 10), no nginx, no auth",
                  flush=True)
            for n in range(1, args.runs + 1):
                for kind in ("launcher", "plain"):
                    for clients, row in bench.measure(kind, n, args.seconds).items():
                        results[kind].setdefault(clients, []).append(row)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print()
    print(f"medians of {args.runs} run(s):")
    print("| clients | server | requests/s | p50 ms | p99 ms | errors (sum) | DB connections (max) |")
    print("|---|---|---|---|---|---|---|")
    medians = {}
    for clients in LEVELS:
        for kind in ("launcher", "plain"):
            rows = results[kind][clients]
            m = {k: statistics.median(r[k] for r in rows) for k in ("rps", "p50", "p99")}
            medians[kind, clients] = m["rps"]
            print(f"| {clients} | {kind} | {m['rps']:.1f} | {m['p50']:.1f} | {m['p99']:.1f} | "
                  f"{sum(r['errors'] for r in rows)} | {max(r['db'] for r in rows)} |")
    print()
    for clients in LEVELS:
        print(f"{clients} clients: launcher / plain = {medians['launcher', clients] / medians['plain', clients]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
