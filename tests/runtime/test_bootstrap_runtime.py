"""The bootstrap bundle, run for real: shellcheck, nginx, MLflow from its hash
lock, and the launcher (basic auth on) against PostgreSQL 15 and MariaDB 10.11
with TLS, S3 and SSM from moto.

What stands in for the instance: the bundle is unpacked and its files put
under a fake root; MLflow's venv is made by the bundle's install-venv.sh from
the bundle's lock (uv from its own hash lock, every wheel hash-checked); the
launcher runs from that venv with exactly the environment the rendered unit
sets (Environment= lines and the EnvironmentFile), plus the moto endpoint and
fake credentials (and RUNTIME_DIRECTORY, which systemd sets for the unit's
RuntimeDirectory=); nginx runs the rendered site file.
"""
from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path
from urllib.parse import quote

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from modules.mlflow_instance import NGINX_SITE_PATH, build_bundle, render_user_data
from runtime_helpers import (
    DB_PASSWORD,
    basic_auth,
    boot_deployment,
    http_status,
    inputs_for,
    nginx_check,
    nginx_test_conf,
    random_secret,
    run,
    unpack,
    wait_until,
)

pytestmark = pytest.mark.runtime

def files_holding(secrets_: list[str], *directories: Path) -> set[str]:
    """Files under directories holding any of the secrets (plain, URL-quoted, or that for an ini file)."""
    forms = {f for s in secrets_ for f in (s, quote(s, safe=""), quote(s, safe="").replace("%", "%%"))}
    needles = [f.encode() for f in forms]
    found = set()
    for directory in directories:
        for path in Path(directory).rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                if any(n in data for n in needles):
                    found.add(str(path))
    return found


def check_auth_store(ini: str, engine: str) -> str:
    """The auth store is its own database at alembic head with one admin; returns its URI."""
    import configparser

    import sqlalchemy as sa
    from alembic.script import ScriptDirectory
    from mlflow.server.auth.db.utils import _get_alembic_dir

    config = configparser.ConfigParser()
    config.read_string(ini)
    uri = config["mlflow"]["database_uri"]
    url = sa.engine.make_url(uri)
    assert url.database == "mlflow_auth" and url.password == DB_PASSWORD
    head = ScriptDirectory(str(_get_alembic_dir())).get_current_head()
    engine_ = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    try:
        with engine_.connect() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version_auth").scalars().all() == [head]
            assert conn.exec_driver_sql("SELECT username, is_admin FROM users").all() == [("admin", True)]
        inspector = sa.inspect(engine_)
        tables = set(inspector.get_table_names())
        assert {"users", "experiment_permissions", "registered_model_permissions", "roles"} <= tables
        if engine == "mysql":  # the launcher's distinct foreign-key names (mlflow#9642)
            names = {fk["name"] for t in ("experiment_permissions", "registered_model_permissions")
                     for fk in inspector.get_foreign_keys(t)}
            assert {"fk_experiment_permissions_user_id", "fk_registered_model_permissions_user_id"} <= names
    finally:
        engine_.dispose()
    return uri


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_bundle_scripts_pass_shellcheck_and_nginx(engine, base_dir, tls):
    work = base_dir / f"lint-{engine}"
    bundle = build_bundle(inputs_for(engine, work, tls.ca_cert))
    root = unpack(bundle, work)
    scripts = [work / "bundle" / "bootstrap.sh", work / "bundle" / "install-venv.sh"]
    user_data = work / "user-data.sh"
    user_data.write_text(render_user_data("mlflow-dev-artifacts-0a1b2c3d", bundle.key, bundle.sha256, "us-east-1"))
    run(["shellcheck", "--shell=bash", "--severity=style", *map(str, scripts), str(user_data)])
    nginx_check(nginx_test_conf(work / "nginx", root / NGINX_SITE_PATH.lstrip("/")))


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)
def test_bootstrap_end_to_end(database, moto_server, locked_venv, base_dir, tls, tmp_path, request, monkeypatch):
    engine = database.engine
    work = base_dir / f"run-{engine}"
    # The bundle, its SSM parameters and bucket as Terraform would create them, nginx
    # with the rendered site (502 until MLflow is up), then the launcher as systemd would run it.
    deployment = boot_deployment(database, moto_server, locked_venv, work, tls, request)
    inputs, bundle, root, venv = deployment.inputs, deployment.bundle, deployment.root, deployment.venv
    instance, mlflow_service, base = deployment.instance, deployment.service, deployment.base
    ssm, parameters, bucket = deployment.ssm, deployment.parameters, deployment.bucket
    assert inputs.auth and inputs.auth_admin_username == "admin"
    assert instance.exec_start == [f"{inputs.install_dir}/venv/bin/python", inputs.launcher_path]
    assert instance.unit_keys["EnvironmentFile"] == inputs.launcher_env_path
    assert instance.unit_keys["KillMode"] == "control-group"
    assert instance.unit_keys["StandardError"] == instance.unit_keys["StandardOutput"]
    # RuntimeDirectory=mlflow: systemd makes /run/mlflow (0700, tmpfs) and sets
    # RUNTIME_DIRECTORY; here a private directory stands in for it.
    assert (instance.unit_keys["RuntimeDirectory"], instance.unit_keys["RuntimeDirectoryMode"]) == ("mlflow", "0700")
    runtime_dir, log_file = instance.runtime_dir, instance.log_file
    print(f"\n{engine}: launcher start to healthy through nginx {deployment.start_seconds:.1f}s")

    # --- MLflow runs from the locked venv: the lock's exact versions -----------------
    server_exe = Path(f"/proc/{mlflow_service.pgid}/exe").resolve()
    assert server_exe == (venv / "bin" / "python").resolve()
    versions = run([str(venv / "bin" / "python"), "-c",
                    "import mlflow, sqlalchemy; print(mlflow.__version__, sqlalchemy.__version__)"]).stdout.split()
    lock_text = bundle.members["requirements.txt"].decode()
    assert f"\nmlflow=={versions[0]} \\\n" in lock_text and f"\nsqlalchemy=={versions[1]} \\\n" in lock_text
    assert versions[0] == inputs.mlflow_version

    # --- secrets: in the server's environment, never on a command line -----------
    admin_password = parameters["mlflow/admin_password"]
    flask_key = parameters["mlflow/flask_secret_key"]
    pids = mlflow_service.group_pids()
    # The launcher, now the supervisor (the same PID, exec'd into an interpreter with the standard
    # library only); the UI server's single uvicorn process; the API server's gunicorn master and
    # its 2 sync workers (25 connections hold the UI server and 3 workers of 6, and 2 were asked
    # for). No `mlflow server` parent: the launcher ran MLflow's CLI in a fork and started what it
    # would have started (launcher.server_command).
    cmdlines = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1] for pid in pids}
    supervisor = mlflow_service.pgid
    assert cmdlines[supervisor][1:3] == [str(root / inputs.launcher_path.lstrip("/")).encode(), b"--supervise-fd"]
    assert len(pids) == 5 and not [a for a in cmdlines.values() if a[1:4] == [b"-m", b"mlflow", b"server"]], cmdlines
    [ui_server] = [pid for pid, a in cmdlines.items() if a[1:3] == [b"-m", b"uvicorn"]]
    a = cmdlines[ui_server]
    assert (a[a.index(b"--loop") + 1], a[a.index(b"--workers") + 1], a[a.index(b"--port") + 1]) == (
        b"launcher:serving_loop", b"1", str(inputs.mlflow_port).encode())
    gunicorn = {pid: a for pid, a in cmdlines.items() if a[1:3] == [b"-m", b"gunicorn"]}
    assert len(gunicorn) == 3, cmdlines  # the master and 2 workers (forked: the same command line)
    assert all(a[a.index(b"--config") + 1] == str(root / inputs.launcher_path.lstrip("/")).encode()
               and a[a.index(b"--worker-class") + 1] == b"sync" and a[a.index(b"-w") + 1] == b"2"
               and a[a.index(b"-b") + 1] == f"127.0.0.1:{inputs.mlflow_port + 1}".encode()
               for a in gunicorn.values())
    [api_server] = [pid for pid in gunicorn if parent_pid(pid) == supervisor]  # the master
    servers = [ui_server, api_server]
    assert parent_pid(ui_server) == supervisor
    supervisor_env = Path(f"/proc/{supervisor}/environ").read_bytes().decode(errors="replace")
    quoted = quote(DB_PASSWORD, safe="")
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        for secret in (DB_PASSWORD, quoted, admin_password, flask_key):
            assert secret not in cmdline, cmdline
    assert not [secret for secret in (DB_PASSWORD, quoted, admin_password, flask_key) if secret in supervisor_env]
    # `mlflow server --app-name basic-auth`'s app in both servers: MLflow's auth app.
    assert all(any(arg.startswith(b"mlflow.server.auth:create_app") for arg in cmdlines[pid]) for pid in servers)
    server_env = dict(
        item.split("=", 1) for item in
        Path(f"/proc/{servers[0]}/environ").read_bytes().decode().split("\0") if "=" in item
    )
    assert quoted in server_env["MLFLOW_BACKEND_STORE_URI"]
    assert server_env["MLFLOW_AUTH_ADMIN_PASSWORD"] == admin_password
    assert server_env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == flask_key
    # basic_auth.ini: in the runtime directory, 0600, the auth store's URI, no admin password.
    auth_ini = Path(server_env["MLFLOW_AUTH_CONFIG_PATH"])
    assert auth_ini == runtime_dir / "basic_auth.ini"
    assert stat.S_IMODE(auth_ini.stat().st_mode) == 0o600
    assert [p.name for p in runtime_dir.iterdir()] == ["basic_auth.ini"]  # no leftover temp file
    ini = auth_ini.read_text()
    assert "default_permission = NO_PERMISSIONS\n" in ini and "admin_username = admin\n" in ini
    auth_uri = check_auth_store(ini, engine)
    assert server_env["MLFLOW_ARTIFACTS_DESTINATION"] == f"s3://{bucket}/artifacts"
    assert server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert server_env["MLFLOW_DB_PASSWORD_SSM_PARAMETER"] == inputs.parameter_names["db/password"]
    assert "MLFLOW_WORKERS" not in server_env
    # Pools of 2 + 1 per engine, one Flask request at a time in the UI server. serving_loop (UI
    # server) and post_fork (API workers) make them MLflow's pool variables; MLflow's CLI, in the
    # launcher's fork, uses NullPool.
    assert (server_env["MLFLOW_WORKER_POOL_SIZE"], server_env["MLFLOW_WORKER_MAX_OVERFLOW"],
            server_env["MLFLOW_REQUEST_THREADS"], server_env["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"]) == (
        "2", "1", "1", "NullPool")
    assert server_env["MLFLOW_GATEWAY_BUDGET_REDIS_URL"] == "rediss://cache.example.test:6379/0"
    assert "https://mlflow.example.test" in server_env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"].split(",")
    # Where the secrets that came from SSM are at rest now: only the DB password, only in
    # basic_auth.ini (0600, tmpfs on the instance). Not in the bundle, the user data, the
    # installed files, the log, the state directory or nginx's logs.
    secrets_ = [DB_PASSWORD, admin_password, flask_key]
    at_rest = files_holding(secrets_, root, work / "bundle", Path(inputs.state_dir), Path(inputs.log_dir),
                            runtime_dir, work / "nginx")
    assert at_rest == {str(auth_ini)}
    assert files_holding([admin_password, flask_key], runtime_dir) == set()
    for secret in secrets_:
        assert secret.encode() not in bundle.data and quote(secret, safe="").encode() not in bundle.data

    # --- authentication and Host validation through nginx -------------------------------
    admin = basic_auth("admin", admin_password)
    api = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http_status(api, {"Host": "mlflow.example.test"}) == 401  # anonymous
    assert http_status(api, {"Host": "mlflow.example.test", **basic_auth("admin", "wrong-password")}) == 401
    assert http_status(api, {"Host": "mlflow.example.test", **admin}) == 200
    assert http_status(api, {"Host": "evil.example", **admin}) == 403
    assert http_status(f"{base}/health", {"Host": "10.0.3.17"}) == 200  # the ALB's check, anonymous
    assert http_status(f"{base}/health") == 200

    # --- the MLflow client through nginx, with the admin credentials from SSM --------
    stored = ssm.get_parameter(Name=inputs.parameter_names["mlflow/admin_password"], WithDecryption=True)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stored["Parameter"]["Value"])
    payload = os.urandom(1024 * 1024) + b"end"
    artifact = tmp_path / "payload.bin"
    artifact.write_bytes(payload)
    mlflow.set_tracking_uri(base)
    try:
        experiment_id = mlflow.create_experiment(f"runtime-{engine}-{os.getpid()}")
        with mlflow.start_run(experiment_id=experiment_id) as active:
            mlflow.log_param("alpha", "0.5")
            mlflow.log_metric("loss", 0.25, step=1)
            mlflow.log_metric("loss", 0.125, step=2)
            mlflow.log_artifact(str(artifact), artifact_path="data")
        run_id = active.info.run_id
    finally:
        mlflow.set_tracking_uri(None)
    client = MlflowClient(tracking_uri=base)
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied, not s3:// at the client
    assert got.data.params == {"alpha": "0.5"}
    assert got.data.metrics == {"loss": 0.125}
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.25, 0.125]
    assert [a.path for a in client.list_artifacts(run_id, "data")] == ["data/payload.bin"]
    downloaded = Path(client.download_artifacts(run_id, "data/payload.bin", str(tmp_path / "dl")))
    assert hashlib.sha256(downloaded.read_bytes()).digest() == hashlib.sha256(payload).digest()
    keys = [o["Key"] for o in moto_server.client("s3").list_objects_v2(
        Bucket=bucket, Prefix="artifacts/").get("Contents", [])]
    assert any(k.endswith("/data/payload.bin") for k in keys), keys
    # nginx sent the REST API to the API server, the artifacts and /health to the UI server.
    ui_port, api_port = f"127.0.0.1:{inputs.mlflow_port}", f"127.0.0.1:{inputs.mlflow_port + 1}"
    served = {}
    for line in (work / "nginx" / "access.log").read_text().splitlines():
        method, uri, status, upstream = line.split(" ", 3)
        served.setdefault((method, uri.split("/artifacts/")[0]), set()).add(upstream)
    assert served[("POST", "/api/2.0/mlflow/runs/log-metric")] == {api_port}, served
    assert served[("GET", "/api/2.0/mlflow/runs/get")] == {api_port}, served
    assert served[("PUT", "/api/2.0/mlflow-artifacts")] == {ui_port}, served
    assert served[("GET", "/api/2.0/mlflow/metrics/get-history")] == {api_port}, served
    assert served[("GET", "/api/3.0/mlflow/server-info")] == {ui_port}, served  # FastAPI-only
    assert {u for (method, uri), ups in served.items() if method == "GET"
            and uri.startswith("/api/2.0/mlflow-artifacts/") for u in ups} == {ui_port}, served
    assert served[("GET", "/health")] >= {ui_port}, served
    log_text = log_file.read_text()
    for secret in (DB_PASSWORD, quoted, admin_password, flask_key):
        assert secret not in log_text

    # --- restart against the initialized stores, with a rotated admin password --------
    mlflow_service.stop()
    assert mlflow_service.group_pids() == []
    rotated = random_secret(32)
    ssm.put_parameter(Name=inputs.parameter_names["mlflow/admin_password"], Value=rotated,
                      Type="SecureString", Overwrite=True)
    mlflow_service = instance.service()
    started = time.monotonic()
    mlflow_service.start()
    wait_until(lambda: http_status(f"{base}/health") == 200, "MLflow /health after the restart", 120,
               mlflow_service)
    print(f"{engine}: restart to healthy {time.monotonic() - started:.1f}s")
    assert "set the password of 'admin' to the one in SSM" in log_file.read_text()
    assert http_status(api, {"Host": "mlflow.example.test", **admin}) == 401  # the old password
    assert http_status(api, {"Host": "mlflow.example.test", **basic_auth("admin", rotated)}) == 200
    assert http_status(api, {"Host": "mlflow.example.test"}) == 401
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", rotated)
    assert MlflowClient(tracking_uri=base).get_run(run_id).data.params == {"alpha": "0.5"}
    assert check_auth_store(auth_ini.read_text(), engine) == auth_uri
    assert files_holding([rotated], root, Path(inputs.state_dir), Path(inputs.log_dir), work / "nginx") == set()

    # --- MLflow down: the health check through nginx must fail -------------------------
    mlflow_service.stop()
    assert mlflow_service.group_pids() == []
    assert http_status(f"{base}/health") == 502
