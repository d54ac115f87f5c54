"""Upgrade rehearsal: the previous MLflow minor release, then the pinned one, on one database.

Each release runs from its own bundle and lock (its own venv, made by the
bundle's install-venv.sh) through the same launcher, as an instance refresh
would do it: the old instance logs runs, metrics and an artifact and is
stopped; the new one migrates the schema in-process at start. The test then
checks that the schema is at the new head and that every run, parameter, tag,
metric history and artifact reads back unchanged.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from modules.mlflow_instance import build_bundle, locking
from modules.mlflow_instance import launcher as L
from modules.settings import Settings
from runtime_helpers import (
    ALLOWED_HOSTS,
    Instance,
    http_status,
    inputs_for,
    put_parameters,
    random_secret,
    run,
    unpack,
    wait_until,
)

pytestmark = pytest.mark.runtime


def _minor(version: str) -> tuple[int, int]:
    major, minor, *_ = version.split(".")
    return int(major), int(minor)


PINNED = Settings.model_fields["mlflow_version"].default
PREVIOUS = max((v for v in locking.locked_versions() if _minor(v) < _minor(PINNED)),
               key=lambda v: tuple(map(int, v.split("."))), default=None)
HEAD_OF = ("import os, mlflow.store; from alembic.script import ScriptDirectory; "
           "print(ScriptDirectory(os.path.join(os.path.dirname(mlflow.store.__file__), 'db_migrations'))"
           ".get_current_head())")


def schema_head(venv: Path) -> str:
    """The newest tracking-schema revision the venv's MLflow knows."""
    return run([str(venv / "bin" / "python"), "-c", HEAD_OF]).stdout.strip()


def schema_revision(uri: str) -> list[str]:
    engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    finally:
        engine.dispose()


def snapshot(client: MlflowClient, experiment_id: str) -> dict:
    """Every run of the experiment: info, params, tags, metrics with full histories, artifacts."""
    runs = {}
    for r in client.search_runs([experiment_id], max_results=100):
        histories = {key: sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(
            r.info.run_id, key)) for key in r.data.metrics}
        artifacts = sorted((a.path, a.file_size) for a in client.list_artifacts(r.info.run_id, "data"))
        runs[r.info.run_id] = {
            "info": (r.info.run_name, r.info.status, r.info.start_time, r.info.end_time),
            "params": r.data.params, "tags": r.data.tags, "metrics": r.data.metrics,
            "histories": histories, "artifacts": artifacts,
        }
    return runs


@pytest.mark.skipif(PREVIOUS is None, reason=f"no lock of a minor release before {PINNED}")
# The default engine (MySQL; MariaDB stands in), where MLflow's migrations have been touchier.
# Both engines boot from the lock in test_bootstrap_runtime; one rehearsal keeps the tier fast.
@pytest.mark.parametrize("database", ["mysql"], indirect=True)
def test_upgrade_from_the_previous_minor_release_keeps_every_run(
        database, moto_server, locked_venv, base_dir, tls, tmp_path, request, monkeypatch):
    engine = database.engine
    bucket = f"mlflow-upgrade-{engine}"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    values = {
        "db/host": database.host, "db/port": str(database.port), "db/name": database.name,
        "db/username": database.user, "db/password": database.password,
        "mlflow/artifact_bucket": bucket, "mlflow/allowed_hosts": ALLOWED_HOSTS,
        "mlflow/admin_password": random_secret(32), "mlflow/flask_secret_key": random_secret(64),
    }
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", values["mlflow/admin_password"])

    def start(version: str):
        work = base_dir / f"upgrade-{engine}-{version}"
        # One server process: the schema and the data are what is rehearsed (the bootstrap test runs two).
        inputs = inputs_for(engine, work, tls.ca_cert, mlflow_version=version, workers=1,
                            ssm_prefix=f"/mlflow/upgrade-{engine}")
        bundle = build_bundle(inputs)
        venv = locked_venv(bundle)
        instance = Instance(inputs, work, unpack(bundle, work), venv, moto_server.endpoint, request)
        put_parameters(moto_server.client("ssm"), inputs, values)
        service = instance.service()
        started = time.monotonic()
        service.start()
        url = f"http://127.0.0.1:{inputs.mlflow_port}"
        wait_until(lambda: http_status(f"{url}/health") == 200, f"MLflow {version}", 180, service)
        print(f"\n{engine}: MLflow {version} healthy in {time.monotonic() - started:.1f}s")
        uri = L.backend_store_uri(values, L.Config.from_environ(instance.env))
        return service, url, venv, uri

    # --- the previous release: an empty database, runs, metrics and an artifact ---------
    old, url, old_venv, uri = start(PREVIOUS)
    assert run([str(old_venv / "bin" / "python"), "-c", "import mlflow; print(mlflow.__version__)"]
               ).stdout.strip() == PREVIOUS
    old_head = schema_head(old_venv)
    assert schema_revision(uri) == [old_head]
    client = MlflowClient(tracking_uri=url)
    experiment_id = client.create_experiment(f"upgrade-{engine}-{os.getpid()}")
    payload = os.urandom(256 * 1024)
    (tmp_path / "model.bin").write_bytes(payload)
    for n in range(3):
        r = client.create_run(experiment_id, run_name=f"run-{n}", tags={"team": "ml", "n": str(n)})
        client.log_param(r.info.run_id, "alpha", str(n / 10))
        for step in range(5):
            client.log_metric(r.info.run_id, "loss", 1.0 / (step + n + 1), step=step,
                              timestamp=1_700_000_000_000 + step)
        client.log_metric(r.info.run_id, "accuracy", 0.9 + n / 100, step=0, timestamp=1_700_000_000_000)
        client.log_artifact(r.info.run_id, str(tmp_path / "model.bin"), artifact_path="data")
        client.set_terminated(r.info.run_id)
    before = snapshot(client, experiment_id)
    assert len(before) == 3 and all(len(r["histories"]["loss"]) == 5 for r in before.values())
    old.stop()
    assert old.group_pids() == []

    # --- the pinned release on the same database: migrates at start -----------------------
    new, url, new_venv, uri = start(PINNED)
    new_head = schema_head(new_venv)
    assert new_head != old_head, f"{PREVIOUS} and {PINNED} share the schema head: nothing to rehearse"
    assert schema_revision(uri) == [new_head]
    client = MlflowClient(tracking_uri=url)
    assert snapshot(client, experiment_id) == before
    for run_id in before:
        got = Path(client.download_artifacts(run_id, "data/model.bin", str(tmp_path / run_id)))
        assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(payload).digest()
    # ... and it takes new data on the migrated schema.
    r = client.create_run(experiment_id, run_name="after-upgrade")
    client.log_metric(r.info.run_id, "loss", 0.01, step=0)
    assert client.get_run(r.info.run_id).data.metrics == {"loss": 0.01}
    new.stop()
