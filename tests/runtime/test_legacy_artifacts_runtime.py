"""Old runs' artifacts after adopting the HCL deployment (docs/adoption.md, "Old runs' artifacts").

The HCL's servers ran plain ``mlflow server --default-artifact-root s3://<bucket>/<path>``
without artifact proxying: clients got ``s3://`` URIs and read S3 with their own
credentials. Here such a server (the locked MLflow, S3 from moto) logs a run, a model
version and a logged model into PostgreSQL or MariaDB with an S3-credentialed client and
stops. Then our launcher, configured as the ``hcl`` naming profile configures it
(destination at the bucket root, rewrite on), starts on the same database behind nginx.
A client without any AWS credentials must read every old artifact through the server
and log a new run into the old experiment. Both clients run in subprocesses
(legacy_client.py) so their environments are exactly the ones given here.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from modules.mlflow_instance import NGINX_SITE_PATH, build_bundle
from modules.mlflow_instance import launcher as L
from modules.naming import names_for
from runtime_helpers import (
    ALLOWED_HOSTS,
    NGINX_BIN,
    Instance,
    Service,
    free_port,
    http_status,
    inputs_for,
    nginx_test_conf,
    put_parameters,
    random_secret,
    unpack,
    wait_until,
)

pytestmark = pytest.mark.runtime

CLIENT = Path(__file__).with_name("legacy_client.py")
HCL_PATH = "mlflow"  # the HCL server's --default-artifact-root path in the bucket; any path maps
PRIMARY_KEYS = {"experiments": "experiment_id", "runs": "run_uuid", "model_versions": "name, version",
                "logged_models": "model_id"}


def uri_rows(uri: str) -> dict[str, dict[tuple, str | None]]:
    """{table.column: {primary key: URI}} of every artifact URI column the launcher rewrites."""
    engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {f"{t}.{c}": {tuple(row[:-1]): row[-1] for row in conn.exec_driver_sql(
                f"SELECT {PRIMARY_KEYS[t]}, {c} FROM {t}")}
                for t, c in L.ARTIFACT_URI_COLUMNS}
    finally:
        engine.dispose()


def proxied(old: str | None, root: str) -> str | None:
    """What the rewrite must make of ``old``, written out independently of the launcher's SQL."""
    if not isinstance(old, str):
        return old
    if old == root or (old.startswith(f"{root}/") and not old.startswith(f"{root}//")):
        return "mlflow-artifacts:/" + old[len(root) + 1:]
    return old


def client(mode: str, env: dict[str, str], *args: str) -> dict:
    result = subprocess.run([sys.executable, str(CLIENT), mode, *args], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, f"legacy_client {mode} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def bucket_keys(s3, bucket: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


@pytest.mark.parametrize("database", ["postgres", "mysql"], indirect=True)
def test_old_runs_artifacts_stay_readable_through_the_proxy(
        database, moto_server, locked_venv, base_dir, tls, tmp_path, request):
    engine = database.engine
    work = base_dir / f"legacy-{engine}"
    bucket = f"mlflow-legacy-{engine}"
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket=bucket)
    hcl_names = names_for("hcl", "mlflow", "dev", "mysql8.0")
    # One server process: the artifact paths are the same in each (the bootstrap test runs two).
    inputs = inputs_for(engine, work, tls.ca_cert, ssm_prefix=f"/mlflow/legacy-{engine}", workers=1,
                        artifacts_prefix=hcl_names.artifacts_prefix,
                        rewrite_legacy_artifact_uris=hcl_names.rewrite_legacy_artifact_uris)
    bundle = build_bundle(inputs)
    venv = locked_venv(bundle)
    root = unpack(bundle, work)
    instance = Instance(inputs, work, root, venv, moto_server.endpoint, request)
    values = {
        "db/host": database.host, "db/port": str(database.port), "db/name": database.name,
        "db/username": database.user, "db/password": database.password,
        "mlflow/artifact_bucket": bucket, "mlflow/allowed_hosts": ALLOWED_HOSTS,
        "mlflow/admin_password": random_secret(32), "mlflow/flask_secret_key": random_secret(64),
    }
    put_parameters(moto_server.client("ssm"), inputs, values)
    uri = L.backend_store_uri(values, L.Config.from_environ(instance.env))
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(64 * 1024) + b"legacy")
    expected = hashlib.sha256(payload.read_bytes()).hexdigest()
    base_env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "HOME": str(tmp_path)}

    # --- the HCL's way: plain mlflow server, s3:// artifact root, no proxy --------------------
    s3_env = {**base_env, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
              "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": moto_server.endpoint}
    # Without MLflow 3's job runner (huey consumers, on by default): what is pinned here is the
    # URIs the server hands out, and the runner cost about 12 CPU seconds per test.
    hcl_env = {**s3_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    port = free_port()
    hcl = Service(f"mlflow the HCL's way ({engine})", [
        str(venv / "bin" / "python"), "-m", "mlflow", "server", "--backend-store-uri", uri,
        "--default-artifact-root", f"s3://{bucket}/{HCL_PATH}", "--no-serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], work / "hcl.log", env=hcl_env, cwd=work)
    request.addfinalizer(hcl.stop)
    started = time.monotonic()
    hcl.start()
    wait_until(lambda: http_status(f"http://127.0.0.1:{port}/health") == 200, "the HCL-style server", 240,
               hcl)
    print(f"\n{engine}: HCL-style server (empty schema) healthy in {time.monotonic() - started:.1f}s")
    state = client("log", s3_env, f"http://127.0.0.1:{port}", str(payload), f"legacy-{engine}")
    legacy_root = f"s3://{bucket}/{HCL_PATH}/"
    for key in ("run_artifact_uri", "experiment_artifact_location", "model_version_source",
                "logged_model_artifact_location"):
        assert state[key].startswith(legacy_root), (key, state[key])
    # Decoys the rewrite must leave alone: another bucket, and this bucket in other case
    # (MySQL's collations compare case-insensitively).
    hcl_client = MlflowClient(f"http://127.0.0.1:{port}")
    decoys = {"decoy-other-bucket": f"s3://other-bucket/{HCL_PATH}/decoy",
              "decoy-upper-case": f"s3://{bucket.upper()}/{HCL_PATH}/decoy"}
    for name, location in decoys.items():
        hcl_client.create_experiment(f"{name}-{engine}", artifact_location=location)
    before, keys_before = uri_rows(uri), bucket_keys(s3, bucket)
    run_key = f"{HCL_PATH}/{state['experiment_id']}/{state['run_id']}/artifacts/data/payload.bin"
    assert run_key in keys_before
    hcl.stop()
    assert hcl.group_pids() == []

    # --- ours on the same database: rewrite at start, artifacts proxied, behind nginx ----------
    nginx_conf = nginx_test_conf(work / "nginx", root / NGINX_SITE_PATH.lstrip("/"))
    nginx = Service("nginx", [NGINX_BIN, "-c", str(nginx_conf), "-p", str(nginx_conf.parent),
                              "-e", str(nginx_conf.parent / "error.log")], work / "nginx" / "stdout.log")
    request.addfinalizer(nginx.stop)
    nginx.start()
    ours = instance.service()
    started = time.monotonic()
    ours.start()
    base = f"http://127.0.0.1:{inputs.http_port}"
    wait_until(lambda: http_status(f"{base}/health") == 200, "our server through nginx", 180, ours)
    print(f"{engine}: launcher (rewrite on) healthy through nginx in {time.monotonic() - started:.1f}s")

    # --- a client without AWS credentials, through nginx ---------------------------------------
    empty = tmp_path / "empty-aws-file"
    empty.write_text("")
    bare_env = {**base_env, "AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
                "AWS_EC2_METADATA_DISABLED": "true",
                "MLFLOW_S3_ENDPOINT_URL": moto_server.endpoint,  # so only the credentials are missing
                "MLFLOW_TRACKING_USERNAME": "admin",
                "MLFLOW_TRACKING_PASSWORD": values["mlflow/admin_password"]}
    (tmp_path / "state.json").write_text(json.dumps(state))
    read = client("read", bare_env, base, str(tmp_path / "state.json"), str(payload), str(tmp_path / "read"))
    assert "NoCredentialsError" in read["direct_s3"].get("error", ""), read["direct_s3"]  # the control
    for step in ("run_artifact", "model_version", "logged_model"):
        assert read[step].get("ok") == expected, (step, read[step])
    new = read["new_run"].get("ok")
    assert new, read["new_run"]
    old_experiment = f"mlflow-artifacts:/{HCL_PATH}/{state['experiment_id']}"
    assert new["artifact_uri"] == f"{old_experiment}/{new['run_id']}/artifacts"
    assert new["sha256"] == new["expected"]
    # The same objects, none copied or moved: only the new run's artifact was added.
    new_key = f"{HCL_PATH}/{state['experiment_id']}/{new['run_id']}/artifacts/data/new.bin"
    assert bucket_keys(s3, bucket) == keys_before | {new_key}

    # The database: every URI under s3://<bucket>/ and nothing else was rewritten in place
    # (the new run is the only row added since).
    after, destination = uri_rows(uri), f"s3://{bucket}"
    assert after["runs.artifact_uri"].keys() - before["runs.artifact_uri"].keys() == {(new["run_id"],)}
    log_text = instance.log_file.read_text()
    print("\n".join(line for line in log_text.splitlines() if "artifact URIs" in line))
    for name, rows in before.items():
        expected_rows = {pk: proxied(old, destination) for pk, old in rows.items()}
        assert {pk: after[name][pk] for pk in rows} == expected_rows, name
        changed = sum(after[name][pk] != old for pk, old in rows.items())
        assert changed >= 1, (name, rows)
        assert f"artifact URIs: {changed} rows of {name} rewritten from {destination}/ to" in log_text
    assert set(decoys.values()) <= set(after["experiments.artifact_location"].values())
    ours.stop()
    assert ours.group_pids() == []
