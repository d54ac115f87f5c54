"""The rendered bootstrap, run for real: shellcheck, nginx, the launcher and
MLflow (basic auth on) against PostgreSQL 15 and MariaDB 10.11 with TLS, S3 and
SSM from moto.

What stands in for the instance: the rendered files are written under a fake
root; the launcher runs with the test's interpreter (same mlflow version as the
instance's venv) and exactly the environment the rendered unit sets, plus the
moto endpoint and fake credentials (and RUNTIME_DIRECTORY, which systemd sets
for the unit's RuntimeDirectory=); nginx runs the rendered site file.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shlex
import stat
import string
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from modules.mlflow_instance import NGINX_SITE_PATH, UNIT_PATH, BootstrapInputs, render
from runtime_helpers import (
    DB_PASSWORD,
    NGINX_BIN,
    Service,
    free_port,
    http_status,
    run,
    wait_until,
)

pytestmark = pytest.mark.runtime

ALLOWED_HOSTS = "mlflow.example.test, internal-mlflow-123.us-east-1.elb.example"
ALPHANUMERIC = string.ascii_letters + string.digits  # what the product's generated secrets use


def random_secret(length: int) -> str:
    return "".join(secrets.choice(ALPHANUMERIC) for _ in range(length))


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def inputs_for(engine: str, work: Path, ca_bundle: Path, **overrides) -> BootstrapInputs:
    fields = dict(
        region="us-east-1",
        ssm_prefix=f"/mlflow/runtime-{engine}",
        log_group_mlflow="/mlflow/runtime/mlflow",
        log_group_nginx="/mlflow/runtime/nginx",
        log_group_system="/mlflow/runtime/system",
        mlflow_version=mlflow.__version__,
        db_engine=engine,
        metrics_namespace="MLflow/runtime-test",
        mlflow_port=free_port(),
        http_port=free_port(),
        workers=2,
        state_dir=str(work / "state"),
        log_dir=str(work / "log"),
        ca_bundle_path=str(ca_bundle),
    )
    fields.update(overrides)
    return BootstrapInputs(**fields)


def unit_settings(unit: str) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """(Environment=, ExecStart= argv, other [Service] keys) of a rendered unit."""
    env: dict[str, str] = {}
    keys: dict[str, str] = {}
    argv: list[str] = []
    for line in unit.splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line[len("Environment="):]):
                name, _, value = assignment.partition("=")
                env[name] = value
        elif line.startswith("ExecStart="):
            argv = shlex.split(line[len("ExecStart="):])
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys[key] = value
    return env, argv, keys


def write_tree(root: Path, files: dict[str, str]) -> None:
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def nginx_test_conf(directory: Path, site: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    d = directory
    conf.write_text(
        "daemon off;\nmaster_process on;\nworker_processes 1;\n"
        f"pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
        "events { worker_connections 128; }\n"
        "http {\n"
        f"    access_log {d}/access.log;\n"
        f"    client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n"
        f"    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n"
        f"    scgi_temp_path {d}/scgi;\n"
        f"    include {site};\n"
        "}\n"
    )
    return conf


def nginx_check(conf: Path) -> None:
    run([NGINX_BIN, "-t", "-q", "-c", str(conf), "-p", str(conf.parent), "-e", str(conf.parent / "error.log")])


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
def test_rendered_files_pass_shellcheck_and_nginx(engine, base_dir, tls):
    work = base_dir / f"lint-{engine}"
    rendered = render(inputs_for(engine, work, tls.ca_cert))
    script = work / "user-data.sh"
    write_tree(work / "root", rendered.files)
    script.write_text(rendered.user_data)
    run(["shellcheck", "--shell=bash", "--severity=style", str(script)])
    nginx_check(nginx_test_conf(work / "nginx", work / "root" / NGINX_SITE_PATH.lstrip("/")))
    # The user data writes each file verbatim: its heredocs hold the exact content.
    for path, content in rendered.files.items():
        assert f"cat >{path} <<'MLFLOW_BOOTSTRAP_EOF'\n{content}MLFLOW_BOOTSTRAP_EOF\n" in rendered.user_data


@pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)
def test_bootstrap_end_to_end(database, moto_server, base_dir, tls, tmp_path, request, monkeypatch):
    engine = database.engine
    work = base_dir / f"run-{engine}"
    inputs = inputs_for(engine, work, tls.ca_cert)
    rendered = render(inputs)
    assert DB_PASSWORD not in rendered.user_data
    assert inputs.auth and inputs.auth_admin_username == "admin"
    root = work / "root"
    write_tree(root, rendered.files)
    for directory in (inputs.state_dir, inputs.log_dir):
        Path(directory).mkdir(parents=True)

    # --- SSM parameters and the bucket, as Terraform would create them -----------
    bucket = f"mlflow-runtime-{engine}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    ssm = moto_server.client("ssm")
    parameters = {
        "db/host": database.host, "db/port": str(database.port), "db/name": database.name,
        "db/username": database.user, "db/password": database.password,
        "cache/endpoint": "cache.example.test", "cache/port": "6379",
        "mlflow/artifact_bucket": bucket, "mlflow/allowed_hosts": ALLOWED_HOSTS,
        "mlflow/admin_password": random_secret(32), "mlflow/flask_secret_key": random_secret(64),
    }
    secret_keys = ("db/password", "mlflow/admin_password", "mlflow/flask_secret_key")
    for key, value in parameters.items():
        ssm.put_parameter(Name=f"{inputs.ssm_prefix}/{key}", Value=value, Overwrite=True,
                          Type="SecureString" if key in secret_keys else "String")
    assert not any(parameters[k] in rendered.user_data for k in secret_keys)

    # --- the launcher, as systemd would run it -----------------------------------
    unit_env, exec_start, unit_keys = unit_settings(rendered.files[UNIT_PATH])
    assert exec_start == [f"{inputs.install_dir}/venv/bin/python", inputs.launcher_path]
    assert unit_keys["KillMode"] == "control-group"
    log_file = Path(unit_keys["StandardOutput"].removeprefix("append:"))
    assert unit_keys["StandardError"] == unit_keys["StandardOutput"]
    # RuntimeDirectory=mlflow: systemd makes /run/mlflow (0700, tmpfs) and sets
    # RUNTIME_DIRECTORY; here a private directory stands in for it.
    assert (unit_keys["RuntimeDirectory"], unit_keys["RuntimeDirectoryMode"]) == ("mlflow", "0700")
    runtime_dir = work / "run" / unit_keys["RuntimeDirectory"]
    runtime_dir.mkdir(parents=True, mode=0o700)
    env = {"PATH": SYSTEMD_PATH, "LANG": "C.UTF-8", **unit_env,
           "RUNTIME_DIRECTORY": str(runtime_dir),
           "AWS_ENDPOINT_URL": moto_server.endpoint,
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    launcher_file = root / inputs.launcher_path.lstrip("/")

    def launcher() -> Service:
        service = Service(f"mlflow ({engine})", [sys.executable, str(launcher_file)], log_file,
                          env=env, cwd=Path(unit_keys["WorkingDirectory"]))
        request.addfinalizer(service.stop)
        return service

    mlflow_service = launcher()

    # --- nginx with the rendered site ----------------------------------------------
    nginx_conf = nginx_test_conf(work / "nginx", root / NGINX_SITE_PATH.lstrip("/"))
    nginx_check(nginx_conf)
    nginx = Service("nginx", [NGINX_BIN, "-c", str(nginx_conf), "-p", str(nginx_conf.parent),
                              "-e", str(nginx_conf.parent / "error.log")],
                    work / "nginx" / "stdout.log")
    request.addfinalizer(nginx.stop)
    nginx.start()
    base = f"http://127.0.0.1:{inputs.http_port}"
    wait_until(lambda: http_status(f"{base}/health") == 502, "nginx (502 before MLflow starts)", 20, nginx)

    started = time.monotonic()
    mlflow_service.start()
    direct = f"http://127.0.0.1:{inputs.mlflow_port}/health"
    wait_until(lambda: http_status(direct) == 200, "MLflow /health on its own port", 120, mlflow_service)
    wait_until(lambda: http_status(f"{base}/health") == 200, "MLflow /health through nginx", 10,
               mlflow_service)
    print(f"\n{engine}: launcher start to healthy through nginx {time.monotonic() - started:.1f}s")

    # --- secrets: in the server's environment, never on a command line -----------
    admin_password = parameters["mlflow/admin_password"]
    flask_key = parameters["mlflow/flask_secret_key"]
    pids = mlflow_service.group_pids()
    assert len(pids) >= 3, "expected the mlflow server and its uvicorn workers"
    quoted = quote(DB_PASSWORD, safe="")
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        for secret in (DB_PASSWORD, quoted, admin_password, flask_key):
            assert secret not in cmdline, cmdline
    assert Path(f"/proc/{mlflow_service.pgid}/cmdline").read_bytes().split(b"\0")[-3:-1] == [
        b"--app-name", b"basic-auth"]
    server_env = dict(
        item.split("=", 1) for item in
        Path(f"/proc/{mlflow_service.pgid}/environ").read_bytes().decode().split("\0") if "=" in item
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
    assert admin_password not in ini and flask_key not in ini
    auth_uri = check_auth_store(ini, engine)
    assert server_env["MLFLOW_ARTIFACTS_DESTINATION"] == f"s3://{bucket}/artifacts"
    assert server_env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert server_env["MLFLOW_WORKERS"] == "2"
    assert server_env["MLFLOW_GATEWAY_BUDGET_REDIS_URL"] == "rediss://cache.example.test:6379/0"
    assert "https://mlflow.example.test" in server_env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"].split(",")
    log_text = log_file.read_text()
    for secret in (DB_PASSWORD, quoted, admin_password, flask_key):
        assert secret not in log_text

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
    stored = ssm.get_parameter(Name=f"{inputs.ssm_prefix}/mlflow/admin_password", WithDecryption=True)
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

    # --- restart against the initialized stores, with a rotated admin password --------
    mlflow_service.stop()
    assert mlflow_service.group_pids() == []
    rotated = random_secret(32)
    ssm.put_parameter(Name=f"{inputs.ssm_prefix}/mlflow/admin_password", Value=rotated,
                      Type="SecureString", Overwrite=True)
    mlflow_service = launcher()
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

    # --- MLflow down: the health check through nginx must fail -------------------------
    mlflow_service.stop()
    assert mlflow_service.group_pids() == []
    assert http_status(f"{base}/health") == 502
