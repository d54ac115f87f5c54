"""The launcher module (modules/mlflow_instance/launcher.py), imported directly.

No services: the runtime tier (tests/runtime) runs it against real databases.
"""
from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from modules.mlflow_instance import BootstrapInputs, render
from modules.mlflow_instance import launcher as L

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "modules" / "mlflow_instance" / "launcher.py"
VALUES = {
    "db/host": "db.example", "db/port": "3306", "db/name": "mlflow", "db/username": "mlflow_admin",
    "db/password": "p@ss:w/rd%25+&=?#'\"x", "mlflow/artifact_bucket": "bucket",
    "mlflow/allowed_hosts": "alb.example", "mlflow/admin_password": "AdminSecret0123456789",
    "mlflow/flask_secret_key": "FlaskSecret0123456789",
}
BASE_INPUTS = dict(
    region="us-east-1", ssm_prefix="/mlflow/dev", log_group_mlflow="/mlflow/dev/mlflow",
    log_group_nginx="/mlflow/dev/nginx", log_group_system="/mlflow/dev/system",
    mlflow_version="3.17.2", db_engine="mysql", metrics_namespace="MLflow/mlflow-dev",
)


def env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads the ones we write (no quoting needed)."""
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def config_for(**overrides) -> L.Config:
    """The launcher's Config from the launcher.env that render() writes, plus the unit's AWS_REGION."""
    inputs = BootstrapInputs(**{**BASE_INPUTS, **overrides})
    environ = env_file(render(inputs).files[inputs.launcher_env_path])
    return L.Config.from_environ({**environ, "AWS_REGION": inputs.region})


class FakeSSM:
    def __init__(self, store: dict[str, str]):
        self.store, self.calls = store, []

    def get_parameters(self, Names, WithDecryption):  # noqa: N803 (boto3's names)
        assert WithDecryption is True and len(Names) <= L.GET_PARAMETERS_LIMIT
        self.calls.append(list(Names))
        return {"Parameters": [{"Name": n, "Value": self.store[n]} for n in Names if n in self.store],
                "InvalidParameters": [n for n in Names if n not in self.store]}


def test_ruff_passes_on_the_launcher():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(LAUNCHER)],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_configured_and_would_catch_a_fault(tmp_path):
    # The same configuration on a copy with an unused import and a shell call: ruff must fail.
    (tmp_path / "ruff.toml").write_text((LAUNCHER.parent / "ruff.toml").read_text())
    bad = tmp_path / "launcher.py"
    bad.write_text(LAUNCHER.read_text() + "\nimport json\nos.system('true')\n")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(bad)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1 and "F401" in result.stdout and "S605" in result.stdout


def test_launcher_imports_only_the_standard_library_at_module_level():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import launcher; "
            "bad = [m for m in ('boto3', 'sqlalchemy', 'mlflow', 'jinja2', 'pydantic') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code, str(LAUNCHER.parent)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_config_from_the_rendered_env_file_has_todays_names():
    config = config_for()
    assert (config.db_engine, config.ca_bundle, config.region) == (
        "mysql", "/opt/mlflow/rds-global-bundle.pem", "us-east-1")
    assert config.auth and config.admin_username == "admin" and config.auth_db_name == "mlflow_auth"
    assert config.ssm_names == {k: f"/mlflow/dev/{k}" for k in L.ALL_KEYS}
    assert config.required_keys == L.REQUIRED_KEYS + L.AUTH_KEYS


def test_config_takes_an_adopted_deployments_parameter_names():
    names = {k: f"/mlflow-dev/{k.replace('db/', 'database/')}" for k in L.REQUIRED_KEYS + L.AUTH_KEYS}
    config = config_for(ssm_names=names)
    assert config.ssm_names == names  # the optional cache keys are simply not read
    ssm = FakeSSM({name: VALUES[key] for key, name in names.items()})
    assert L.read_parameters(ssm, config) == VALUES
    assert all(n.startswith("/mlflow-dev/") for call in ssm.calls for n in call)


def test_config_without_auth_neither_needs_nor_reads_the_auth_secrets():
    config = config_for(auth=False)
    assert not config.auth and config.required_keys == L.REQUIRED_KEYS
    assert not set(L.AUTH_KEYS) & set(config.ssm_names)


@pytest.mark.parametrize("environ, message", [
    ({"AWS_REGION": ""}, "AWS_REGION is not set"),
    ({"MLFLOW_LAUNCH_DB_ENGINE": "oracle"}, "MLFLOW_LAUNCH_DB_ENGINE='oracle'; allowed: mysql, postgres"),
    ({"MLFLOW_LAUNCH_CA_BUNDLE": ""}, "MLFLOW_LAUNCH_CA_BUNDLE is not set"),
    ({"MLFLOW_LAUNCH_AUTH": "yes"}, "MLFLOW_LAUNCH_AUTH='yes'; allowed: true or false"),
    ({"MLFLOW_LAUNCH_SSM_DB_PASSWORD": ""}, "no SSM parameter name in MLFLOW_LAUNCH_SSM_DB_PASSWORD"),
])
def test_config_errors_name_the_variable(environ, message):
    inputs = BootstrapInputs(**BASE_INPUTS)
    base = {**env_file(render(inputs).files[inputs.launcher_env_path]), "AWS_REGION": "us-east-1"}
    with pytest.raises(L.ConfigError) as caught:
        L.Config.from_environ({**base, **environ})
    assert message in str(caught.value)


def test_parameters_are_read_in_batches_of_ten_and_missing_ones_are_named():
    config = config_for()
    store = {config.ssm_names[k]: v for k, v in VALUES.items()}
    ssm = FakeSSM(store)
    assert L.read_parameters(ssm, config) == VALUES
    assert [len(c) for c in ssm.calls] == [10, 1]  # 11 names
    del store["/mlflow/dev/mlflow/flask_secret_key"]
    with pytest.raises(SystemExit, match=r"mlflow/flask_secret_key \(/mlflow/dev/mlflow/flask_secret_key\)"):
        L.read_parameters(FakeSSM(store), config)
    store["/mlflow/dev/mlflow/flask_secret_key"] = "  "  # blank counts as missing
    with pytest.raises(SystemExit, match="flask_secret_key"):
        L.read_parameters(FakeSSM(store), config)


@pytest.mark.parametrize("engine, scheme", [("mysql", "mysql+pymysql"), ("postgres", "postgresql+psycopg2")])
def test_backend_store_uri_is_quoted_and_verifies_tls(engine, scheme):
    config = config_for(db_engine=engine, ca_bundle_path="/opt/mlflow/ca.pem")
    values = {**VALUES, "db/name": "ml flow", "db/username": "u@x"}
    url = make_url(L.backend_store_uri(values, config))
    assert url.drivername == scheme
    assert (url.username, url.password, url.database) == ("u@x", VALUES["db/password"], "ml flow")
    assert (url.host, url.port) == ("db.example", 3306)
    if engine == "mysql":
        assert dict(url.query) == {"ssl_ca": "/opt/mlflow/ca.pem"}
    else:
        assert dict(url.query) == {"sslmode": "verify-full", "sslrootcert": "/opt/mlflow/ca.pem"}


def test_hosts_origins_and_workers():
    hosts = L.public_hosts({"mlflow/allowed_hosts": " ALB.example ,mlflow.example,,alb.example"})
    assert hosts == ["alb.example", "mlflow.example"]
    assert L.allowed_hosts(hosts).split(",") == [
        "alb.example", "alb.example:*", "mlflow.example", "mlflow.example:*",
        "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]
    assert L.cors_origins(["a.example"]) == "https://a.example,http://a.example"
    gib = 1024 ** 3
    # API workers: one per vCPU, 300 MiB each after 768 reserved, 320 for the UI server, 64 for the
    # API server's gunicorn master (1,152 MiB).
    assert L.serving_processes(cpus=2, memory=4 * gib) == 2  # t3.medium: one per vCPU
    assert L.serving_processes(cpus=2, memory=2 * gib) == 2  # t3.small: (2048 - 1152) // 300 = 2
    assert L.serving_processes(cpus=8, memory=3 * gib) == 6  # memory-bound: (3072 - 1152) // 300
    assert L.serving_processes(cpus=8, memory=2 * gib) == 2  # (2048 - 1152) // 300
    assert L.serving_processes(cpus=2, memory=gib) == 1  # t3.micro: at least one


@pytest.mark.parametrize("engine, scheme", [("mysql", "mysql+pymysql"), ("postgres", "postgresql+psycopg2")])
def test_auth_config_file_and_server_environment(engine, scheme):
    config = config_for(db_engine=engine, auth_admin_username="boss", auth_db_name="tracking_users")
    ini = L.auth_config(VALUES, config)
    parser = configparser.ConfigParser()  # as MLflow reads it (with % interpolation)
    parser.read_string(ini)
    section = parser["mlflow"]
    assert section["default_permission"] == "NO_PERMISSIONS" and section["admin_username"] == "boss"
    url = make_url(section["database_uri"])
    assert url.drivername == scheme and url.database == "tracking_users"
    assert (url.username, url.password, url.host) == ("mlflow_admin", VALUES["db/password"], "db.example")
    assert VALUES["mlflow/admin_password"] not in ini and VALUES["mlflow/flask_secret_key"] not in ini
    base = {"MLFLOW_WORKERS": "2", "MLFLOW_AUTH_ADMIN_USERNAME": "x", "MLFLOW_LAUNCH_DB_ENGINE": engine}
    env = L.server_environment({**VALUES, "cache/endpoint": "c.example", "cache/port": "6379"}, base,
                               config, "/run/mlflow/basic_auth.ini")
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/run/mlflow/basic_auth.ini"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == VALUES["mlflow/admin_password"]
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == VALUES["mlflow/flask_secret_key"]
    assert env["MLFLOW_GATEWAY_BUDGET_REDIS_URL"] == "rediss://c.example:6379/0"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://bucket/artifacts"
    assert "MLFLOW_WORKERS" not in env and env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "MLFLOW_AUTH_ADMIN_USERNAME" not in env
    assert env["MLFLOW_DB_PASSWORD_SSM_PARAMETER"] == "/mlflow/dev/db/password"  # the rotation hook's
    assert not any(k.startswith(L.ENV_PREFIX) for k in env)  # the launcher's own settings stay here
    for argv in (L.ui_argv(config), L.api_argv(config, 2)):
        assert argv[1:4] == ["-m", "mlflow", "server"]
        assert argv[argv.index("--app-name") + 1] == "basic-auth"


def test_auth_off_keeps_the_plain_server():
    config = config_for(auth=False)
    assert "--app-name" not in L.ui_argv(config) and "--app-name" not in L.api_argv(config, 1)
    env = L.server_environment(VALUES, {"MLFLOW_WORKERS": "2"}, config)
    assert not any(k.startswith(("MLFLOW_AUTH", "MLFLOW_FLASK")) for k in env)
    assert "MLFLOW_GATEWAY_BUDGET_REDIS_URL" not in env  # no cache parameters


def test_auth_config_file_is_private(tmp_path):
    path = tmp_path / "basic_auth.ini"
    (tmp_path / "basic_auth.ini.tmp").write_text("stale")
    L.write_private(str(path), "[mlflow]\n")
    assert path.read_text() == "[mlflow]\n" and (path.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["basic_auth.ini"]


# --- artifacts destination and the rewrite of legacy URIs (docs/adoption.md, "Old runs' artifacts") ---

def test_artifacts_destination_and_rewrite_flag_from_the_rendered_env_file():
    config = config_for()
    assert (config.artifacts_prefix, config.rewrite_legacy_artifact_uris) == ("artifacts", False)
    env = L.server_environment(VALUES, {"MLFLOW_WORKERS": "2"}, config, "/run/mlflow/basic_auth.ini")
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://bucket/artifacts"
    adopted = config_for(artifacts_prefix="", rewrite_legacy_artifact_uris=True)
    assert (adopted.artifacts_prefix, adopted.rewrite_legacy_artifact_uris) == ("", True)
    env = L.server_environment(VALUES, {"MLFLOW_WORKERS": "2"}, adopted, "/run/mlflow/basic_auth.ini")
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://bucket"  # the bucket root
    assert config_for(artifacts_prefix="team/mlflow").artifacts_prefix == "team/mlflow"
    # Unset means the default; set but empty means the bucket root.
    inputs = BootstrapInputs(**BASE_INPUTS)
    environ = {**env_file(render(inputs).files[inputs.launcher_env_path]), "AWS_REGION": "us-east-1"}
    del environ["MLFLOW_LAUNCH_ARTIFACTS_PREFIX"], environ["MLFLOW_LAUNCH_REWRITE_LEGACY_ARTIFACT_URIS"]
    config = L.Config.from_environ(environ)
    assert (config.artifacts_prefix, config.rewrite_legacy_artifact_uris) == ("artifacts", False)


@pytest.mark.parametrize("environ, message", [
    ({"MLFLOW_LAUNCH_REWRITE_LEGACY_ARTIFACT_URIS": "yes"},
     "MLFLOW_LAUNCH_REWRITE_LEGACY_ARTIFACT_URIS='yes'; allowed: true or false"),
    ({"MLFLOW_LAUNCH_ARTIFACTS_PREFIX": "/artifacts"}, "MLFLOW_LAUNCH_ARTIFACTS_PREFIX='/artifacts' is not"),
    ({"MLFLOW_LAUNCH_ARTIFACTS_PREFIX": "a/../b"}, "MLFLOW_LAUNCH_ARTIFACTS_PREFIX='a/../b' is not"),
    ({"MLFLOW_LAUNCH_ARTIFACTS_PREFIX": "bootstrap/x"},
     "MLFLOW_LAUNCH_ARTIFACTS_PREFIX='bootstrap/x' is under"),
])
def test_artifact_config_errors_name_the_variable(environ, message):
    inputs = BootstrapInputs(**BASE_INPUTS)
    base = {**env_file(render(inputs).files[inputs.launcher_env_path]), "AWS_REGION": "us-east-1"}
    with pytest.raises(L.ConfigError) as caught:
        L.Config.from_environ({**base, **environ})
    assert message in str(caught.value)


@pytest.mark.parametrize("prefix", ["/artifacts", "artifacts/", "a//b", "a b", "a/./b", "..", "bootstrap"])
def test_bootstrap_inputs_refuse_a_bad_artifacts_prefix(prefix):
    with pytest.raises(ValueError, match="artifacts_prefix"):
        BootstrapInputs(**BASE_INPUTS, artifacts_prefix=prefix)


def test_both_naming_profiles_reach_the_instances_launcher_env(default):
    import base64
    import io
    import tarfile

    from modules.naming import names_for
    from tests.support import HCL_ADOPTION, settings_for, synth_json

    standard, hcl = (names_for(p, "mlflow", "dev", "mysql8.0") for p in ("standard", "hcl"))
    assert (standard.artifacts_prefix, standard.rewrite_legacy_artifact_uris) == ("artifacts", False)
    assert (hcl.artifacts_prefix, hcl.rewrite_legacy_artifact_uris) == ("", True)

    def launcher_env(stack: dict) -> dict[str, str]:
        bundle = stack["resource"]["aws_s3_object"]["bootstrap_bundle"]["content_base64"]
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(bundle))) as tar:
            return env_file(tar.extractfile("files/opt/mlflow/launcher.env").read().decode())

    ours, adopted = launcher_env(default), launcher_env(synth_json(settings_for(**HCL_ADOPTION)))
    assert (ours["MLFLOW_LAUNCH_ARTIFACTS_PREFIX"], ours["MLFLOW_LAUNCH_REWRITE_LEGACY_ARTIFACT_URIS"]) == (
        "artifacts", "false")
    assert (adopted["MLFLOW_LAUNCH_ARTIFACTS_PREFIX"],
            adopted["MLFLOW_LAUNCH_REWRITE_LEGACY_ARTIFACT_URIS"]) == ("", "true")
    # API workers and connection budget from the settings (modules/db_budget.py, docs/runtime.md).
    assert (ours["MLFLOW_LAUNCH_API_WORKERS"], ours["MLFLOW_LAUNCH_DB_CONNECTIONS"]) == ("2", "18")
    assert (adopted["MLFLOW_LAUNCH_API_WORKERS"], adopted["MLFLOW_LAUNCH_DB_CONNECTIONS"]) == ("2", "17")


# The URI columns of MLflow's schema (logged_models left out: a missing table is skipped).
SCHEMA = (
    "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, artifact_location VARCHAR(256))",
    "CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY, artifact_uri VARCHAR(200))",
    ("CREATE TABLE model_versions (name VARCHAR(256), version INTEGER, source VARCHAR(500), "
     "storage_location VARCHAR(500), PRIMARY KEY (name, version))"),
)


def uri_database(uris: dict[str, list[str | None]]):
    """In-memory SQLite with the URI columns, one row per URI: uris = {table.column: [uri, ...]}."""
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://")
    conn = engine.connect()
    for ddl in SCHEMA:
        conn.exec_driver_sql(ddl)
    for i, uri in enumerate(uris["experiments.artifact_location"]):
        conn.execute(sa.text("INSERT INTO experiments VALUES (:i, :u)"), {"i": i, "u": uri})
    for i, uri in enumerate(uris["runs.artifact_uri"]):
        conn.execute(sa.text("INSERT INTO runs VALUES (:i, :u)"), {"i": f"r{i}", "u": uri})
    for i, (source, storage) in enumerate(zip(uris["model_versions.source"],
                                              uris["model_versions.storage_location"], strict=True)):
        conn.execute(sa.text("INSERT INTO model_versions VALUES ('m', :i, :s, :t)"),
                     {"i": i, "s": source, "t": storage})
    conn.commit()
    return conn


def rows(conn) -> dict[str, dict]:
    """{table.column: {primary key: URI}} of the URI columns."""
    queries = {
        "experiments.artifact_location": "SELECT experiment_id, artifact_location FROM experiments",
        "runs.artifact_uri": "SELECT run_uuid, artifact_uri FROM runs",
        "model_versions.source": "SELECT version, source FROM model_versions",
        "model_versions.storage_location": "SELECT version, storage_location FROM model_versions",
    }
    return {name: dict(conn.exec_driver_sql(query).all()) for name, query in queries.items()}


@pytest.mark.parametrize("prefix", ["", "artifacts"])
def test_rewrite_maps_exactly_the_uris_under_the_destination_and_is_idempotent(prefix, capsys):
    import posixpath

    from mlflow.server.handlers import _get_proxied_run_artifact_destination_path as resolve

    bucket = "mlflow-dev-artifacts-0a1b2c3d"
    destination = L.artifacts_destination(bucket, prefix)
    under = destination + "/"
    mapped = [under + "1", under + "1/0123abcd/artifacts", under + "1/models/m-1/artifacts", destination,
              under + "1/0123abcd/artifacts/data/a b%20c.bin"]
    untouched = [
        None, "mlflow-artifacts:/2/abc/artifacts", "runs:/0123abcd/model", "models:/m-1",
        "file:///tmp/x", f"s3://other-bucket/{prefix}/1", f"s3://{bucket}-2/1", f"s3a://{bucket}/1",
        "S3://" + under.removeprefix("s3://") + "1", under.upper() + "1",  # case matters
        under + "/1",  # the key '/1' has no mlflow-artifacts:/ URI
        f"x{under}1", f" {under}1",
    ]
    if prefix:
        untouched += [f"s3://{bucket}/1", f"s3://{bucket}/{prefix}x/1", f"s3://{bucket}/other/{prefix}/1"]
    everything = mapped + untouched
    conn = uri_database({"experiments.artifact_location": everything, "runs.artifact_uri": everything[::-1],
                         "model_versions.source": everything,
                         "model_versions.storage_location": everything[::-1]})
    before = rows(conn)

    counts = L.rewrite_artifact_uris(conn, destination)
    conn.commit()
    assert counts == {name: len(mapped) for name in before}
    assert "no column logged_models.artifact_location; skipped" in capsys.readouterr().err
    after = rows(conn)
    for name, column in after.items():
        for key, new in column.items():
            old = before[name][key]
            if old in mapped:  # through the server's own resolution: the very same object
                assert new.startswith("mlflow-artifacts:/") and not new.startswith("mlflow-artifacts://")
                assert posixpath.join(destination, resolve(new)).rstrip("/") == old, (name, old, new)
            else:
                assert new == old, (name, old, new)
    # Idempotent: a second pass changes nothing.
    assert L.rewrite_artifact_uris(conn, destination) == {name: 0 for name in before}
    assert rows(conn) == after


def test_rewrite_with_a_prefix_leaves_the_bucket_root_alone():
    conn = uri_database({k: ["s3://b/1", "s3://b/artifacts/1"] for k in (
        "experiments.artifact_location", "runs.artifact_uri", "model_versions.source",
        "model_versions.storage_location")})
    L.rewrite_artifact_uris(conn, "s3://b/artifacts")
    assert rows(conn)["runs.artifact_uri"] == {"r0": "s3://b/1", "r1": "mlflow-artifacts:/1"}


# --- serving: the UI server and the API server, API workers from the budget (docs/runtime.md, "Serving") ---

def test_serving_plan_fits_the_ui_server_and_as_many_api_workers_as_the_budget_holds():
    # 3 engines per serving process with auth (tracking, model registry, auth store), 2 without;
    # one request at a time holds at most 2 connections of each.
    assert L.connections_per_process(auth=True) == 6 and L.connections_per_process(auth=False) == 4
    assert L.serving_plan(12, 2, auth=True) == L.ServingPlan(api_workers=1, wanted=2)  # UI + 1 worker
    assert L.serving_plan(11, 2, auth=True) is None  # one short of 2 x 6
    assert L.serving_plan(18, 2, auth=True) == L.ServingPlan(api_workers=2, wanted=2)
    assert L.serving_plan(10_000, 2, auth=True) == L.ServingPlan(api_workers=2, wanted=2)  # never more
    assert L.serving_plan(8, 4, auth=False) == L.ServingPlan(api_workers=1, wanted=4)
    assert L.serving_plan(7, 4, auth=False) is None
    assert L.serving_plan(100, 0, auth=True) is None
    for connections in range(1, 400):
        for wanted in (1, 2, 3, 4):
            plan = L.serving_plan(connections, wanted, auth=True)
            if plan is None:
                assert connections < 2 * 6
                continue
            assert 1 <= plan.api_workers <= wanted and plan.processes == plan.api_workers + 1
            assert plan.processes * L.connections_per_process(True) <= connections
            assert plan.api_workers == wanted or (plan.processes + 1) * 6 > connections  # none left over


def test_every_pool_keeps_the_connections_a_request_holds_and_never_relies_on_overflow_zero():
    """A nested session (log_batch) reuses a pooled connection instead of opening and closing one
    (a TLS handshake and an SSM read per request); MLflow drops a 0 (falsy) overflow."""
    assert L.POOL_SIZE >= L.CONNECTIONS_PER_ENGINE and L.MAX_OVERFLOW >= 1


def test_mlflow_reads_the_pool_variables_the_launcher_sets():
    """MLflow passes each variable on only when truthy: every value the launcher sets must be >= 1."""
    source = Path(L.__file__).parent.parent.parent / ".venv/lib/python3.11/site-packages/mlflow/store/db/utils.py"
    text = source.read_text() if source.exists() else ""
    if text:
        assert "if pool_max_overflow:" in text and "if pool_size:" in text and "if pool_recycle:" in text
    env = L.server_environment(VALUES, {"MLFLOW_PORT": "1", "MLFLOW_WORKERS": "9"},
                               config_for(workers=2, db_connections=25), "/run/mlflow/basic_auth.ini")
    assert env["MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE"] == str(L.POOL_RECYCLE_SECONDS)
    assert env[L.REQUEST_THREADS_VARIABLE] == "1"  # the UI server's Flask requests
    assert "MLFLOW_PORT" not in env and "MLFLOW_WORKERS" not in env  # on each server's command line
    # The `mlflow server` parents keep no connection (NullPool takes no sizes); serving_loop and
    # post_fork give the serving processes their pools.
    assert env["MLFLOW_SQLALCHEMYSTORE_POOLCLASS"] == "NullPool"
    assert "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE" not in env and "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW" not in env
    assert (env["MLFLOW_WORKER_POOL_SIZE"], env["MLFLOW_WORKER_MAX_OVERFLOW"]) == ("2", "1")


def test_the_rendered_env_file_gives_workers_ports_and_budget():
    config = config_for(workers=3, mlflow_port=5100, db_connections=40)
    assert (config.api_workers, config.first_port, config.db_connections) == (3, 5100, 40)
    assert (config.ui_port, config.api_port) == (5100, 5101)
    assert config.serving_plan == L.ServingPlan(api_workers=3, wanted=3)
    assert config_for(workers=3, db_connections=20).serving_plan == L.ServingPlan(api_workers=2, wanted=3)
    assert config_for().db_connections == L.DEFAULT_DB_CONNECTIONS  # no budget given
    with pytest.raises(L.ConfigError, match=r"MLFLOW_LAUNCH_DB_CONNECTIONS=11; allowed: at least 12 \(the UI "
                                            r"server and one API worker\)"):
        L.Config.from_environ({**env_file(render(BootstrapInputs(**BASE_INPUTS, workers=3)).files[
            "/opt/mlflow/launcher.env"]), "AWS_REGION": "us-east-1", "MLFLOW_LAUNCH_DB_CONNECTIONS": "11"})
    with pytest.raises(ValueError, match=r"db_connections 11 is too few for the UI server and one API worker "
                                         r"\(at least 12\)"):
        BootstrapInputs(**BASE_INPUTS, workers=2, db_connections=11)


def test_the_ui_server_runs_uvicorn_with_the_request_limiting_event_loop():
    config = config_for(mlflow_port=5100)
    argv = L.ui_argv(config)
    assert argv[argv.index("--port") + 1] == "5100" and argv[argv.index("--workers") + 1] == "1"
    opts = argv[argv.index("--uvicorn-opts") + 1].split()
    assert opts == ["--app-dir", str(LAUNCHER.parent), "--loop", "launcher:serving_loop", "--no-access-log"]


def test_the_api_server_runs_gunicorn_sync_workers_with_the_launcher_as_config():
    config = config_for(mlflow_port=5100)
    argv = L.api_argv(config, 3)
    assert argv[argv.index("--port") + 1] == "5101" and argv[argv.index("--workers") + 1] == "3"
    opts = argv[argv.index("--gunicorn-opts") + 1].split()
    assert opts[:4] == ["--config", str(LAUNCHER), "--worker-class", "sync"]
    assert opts[opts.index("--timeout") + 1] == str(L.API_TIMEOUT)
    # gunicorn reads, from its config file, every module-level name that is one of its settings:
    # the launcher must define post_fork and nothing else gunicorn would take.
    from gunicorn.config import Config as GunicornConfig

    taken = {name for name in vars(L) if name in GunicornConfig().settings}
    assert taken == {"post_fork"}


def test_serving_loop_caps_the_threads_flask_requests_run_in(monkeypatch):
    import asyncio
    import threading
    import time

    import anyio
    import anyio.to_thread

    env = L.server_environment(VALUES, {}, config_for(workers=2, db_connections=25), "/run/mlflow/basic_auth.ini")
    for name in ("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", *L.WORKER_POOL_VARIABLES):
        monkeypatch.setenv(name, env[name])
    for name in L.WORKER_POOL_VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(L.REQUEST_THREADS_VARIABLE, "2")  # the launcher's 1 would hide a cap of 1 vs none
    active = peak = 0
    lock = threading.Lock()

    def request():
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1

    async def many():
        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(anyio.to_thread.run_sync, request)

    with asyncio.Runner(loop_factory=L.serving_loop) as runner:
        runner.run(many())
    assert peak == 2
    assert "MLFLOW_SQLALCHEMYSTORE_POOLCLASS" not in os.environ  # the worker's engines pool
    assert (os.environ["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"], os.environ["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]) == (
        "2", "1")
    import sqlalchemy as sa
    from mlflow.store.db.utils import create_sqlalchemy_engine

    pool = create_sqlalchemy_engine("postgresql+psycopg2://u:p@127.0.0.1:1/db").pool  # nothing connects
    assert isinstance(pool, sa.pool.QueuePool) and (pool.size(), pool._max_overflow) == (2, 1)


def test_post_fork_gives_each_api_worker_its_pools(monkeypatch):
    env = L.server_environment(VALUES, {}, config_for(), "/run/mlflow/basic_auth.ini")
    for name in ("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", *L.WORKER_POOL_VARIABLES):
        monkeypatch.setenv(name, env[name])
    for name in L.WORKER_POOL_VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    L.post_fork(server=None, worker=None)
    assert "MLFLOW_SQLALCHEMYSTORE_POOLCLASS" not in os.environ
    assert not any(name in os.environ for name in L.WORKER_POOL_VARIABLES)
    assert (os.environ["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"], os.environ["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]) == (
        str(L.POOL_SIZE), str(L.MAX_OVERFLOW))


# --- the servers without `mlflow server` parents (server_command, exec_supervisor) -------------

def _cli_environment(tmp_path: Path) -> dict[str, str]:
    """`mlflow server`'s environment as server_environment makes it, on SQLite (the test venv's
    MLflow, the default pin), auth on."""
    ini = tmp_path / "basic_auth.ini"
    ini.write_text(f"[mlflow]\ndefault_permission = NO_PERMISSIONS\ndatabase_uri = sqlite:///{tmp_path}/auth.db\n"
                   "admin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db",
            "MLFLOW_ARTIFACTS_DESTINATION": f"{tmp_path}/artifacts", "MLFLOW_SERVE_ARTIFACTS": "true",
            "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": "Admin-Secret-0123456789",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "f" * 64, "MLFLOW_SERVER_ALLOWED_HOSTS": "localhost",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"}


def test_server_command_is_what_mlflow_server_would_start(tmp_path):
    """MLflow's CLI runs in a fork up to the start of its server: the command lines it would run
    (uvicorn and gunicorn with our options, MLflow's auth app) and its private variables come
    back; this process's environment is left as it was."""
    # As in the launcher (prepare_auth_store), MLflow's auth package is imported first, here under
    # this process's environment: it reads basic_auth.ini when imported, so the fork must import it again.
    import mlflow.server.auth.sqlalchemy_store  # noqa: F401

    config = config_for()
    env = _cli_environment(tmp_path)
    before = dict(os.environ)
    ui, ui_env = L.server_command(L.ui_argv(config)[1 + len(L.MLFLOW_SERVER):], env)
    api, api_env = L.server_command(L.api_argv(config, 3)[1 + len(L.MLFLOW_SERVER):], env)
    assert dict(os.environ) == before
    assert ui[:3] == [sys.executable, "-m", "uvicorn"] and ui[-2:] == ["--factory", "mlflow.server.auth:create_app"]
    assert ui[ui.index("--loop") + 1] == "launcher:serving_loop" and ui[ui.index("--port") + 1] == str(config.ui_port)
    assert api[:3] == [sys.executable, "-m", "gunicorn"] and api[-1] == "mlflow.server.auth:create_app()"
    assert api[api.index("--config") + 1] == str(LAUNCHER) and api[api.index("-w") + 1] == "3"
    assert api[api.index("-b") + 1] == f"127.0.0.1:{config.api_port}"
    for server_env, sgi in ((ui_env, "uvicorn"), (api_env, "gunicorn")):
        assert server_env["_MLFLOW_SERVER_FILE_STORE"] == env["MLFLOW_BACKEND_STORE_URI"]
        assert server_env["_MLFLOW_SERVER_SERVE_ARTIFACTS"] == "true"
        assert server_env["_MLFLOW_SERVER_ARTIFACT_DESTINATION"] == env["MLFLOW_ARTIFACTS_DESTINATION"]
        assert server_env["_MLFLOW_SGI_NAME"] == sgi and server_env["_MLFLOW_AUTH_ADMIN_BOOTSTRAPPED"] == "true"
        assert server_env["MLFLOW_AUTH_ADMIN_PASSWORD"] == env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert set(ui_env) - {"_MLFLOW_SGI_NAME"} == set(api_env) - {"_MLFLOW_SGI_NAME"}  # each fork starts afresh


def test_server_command_exits_with_the_clis_status_when_mlflow_server_would_fail(tmp_path, capsys):
    env = {**_cli_environment(tmp_path), "MLFLOW_BACKEND_STORE_URI": "nosuchscheme://nowhere"}
    with pytest.raises(SystemExit) as exited:
        L.server_command(["--port", "5000"], env)
    assert exited.value.code == 1
    assert "`mlflow server --port 5000 ...` failed with status 1" in capsys.readouterr().err


def test_exec_supervisor_runs_the_servers_in_the_same_process_from_memory(tmp_path):
    """The launcher becomes the supervisor (same PID, `--supervise-fd`), which starts each server
    with its own environment; the memory file reaches no server, and SIGTERM stops them all."""
    probe = ("import json, os, time; print(json.dumps([os.environ['SERVER_SECRET'], os.getppid(), "
             "[os.readlink(f'/proc/self/fd/{fd}') for fd in os.listdir('/proc/self/fd') "
             "if os.path.exists(f'/proc/self/fd/{fd}')]]), flush=True); "
             "time.sleep(60)")
    code = (f"import sys; sys.path.insert(0, {str(LAUNCHER.parent)!r}); import launcher; "
            f"launcher.exec_supervisor([('probe', [sys.executable, '-c', {probe!r}], {{'SERVER_SECRET': 's3cret'}})])")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        import json
        import select

        assert select.select([proc.stdout], [], [], 60)[0], "the server printed nothing within 60 s"
        secret, parent, fds = json.loads(proc.stdout.readline())
        assert (secret, parent) == ("s3cret", proc.pid)
        assert not [fd for fd in fds if "memfd" in fd], fds  # closed before the server started
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [str(LAUNCHER).encode(), L.SUPERVISE_FLAG.encode()]
        assert b"s3cret" not in Path(f"/proc/{proc.pid}/environ").read_bytes()
        assert not [link for link in Path(f"/proc/{proc.pid}/fd").iterdir() if "memfd" in os.readlink(link)]
    finally:
        proc.terminate()
    assert proc.wait(timeout=30) == 0
