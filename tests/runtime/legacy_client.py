"""The MLflow client of test_legacy_artifacts_runtime, run in a process of its own.

A subprocess, so that its environment is exactly what the test gives it (with S3
credentials for the HCL's server, without any for ours) and no boto3 client
cached in the test process can lend it credentials.

    python legacy_client.py log <tracking uri> <payload file> <name>
        as a client of the HCL's server (S3 credentials in the environment): an experiment,
        a run with a param, metrics and data/payload.bin, a model version from it, a logged
        model with payload.bin; prints their ids and URIs as JSON.
    python legacy_client.py read <tracking uri> <state json> <payload file> <work dir>
        as a client of ours (no AWS credentials): each step's sha256 or error as JSON.
"""
from __future__ import annotations

import hashlib
import json
import sys
import traceback
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def log(tracking_uri: str, payload: str, name: str) -> dict:
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(name)
    run = client.create_run(experiment_id, run_name="hcl-run")
    run_id = run.info.run_id
    client.log_param(run_id, "alpha", "0.5")
    for step, loss in enumerate((0.5, 0.25)):
        client.log_metric(run_id, "loss", loss, step=step)
    client.log_artifact(run_id, payload, artifact_path="data")
    client.set_terminated(run_id)
    client.create_registered_model(f"{name}-model")
    version = client.create_model_version(f"{name}-model", f"{run.info.artifact_uri}/data", run_id=run_id)
    model = client.create_logged_model(experiment_id, name=f"{name}-logged")
    client.log_model_artifact(model.model_id, payload)
    client.finalize_logged_model(model.model_id, "READY")
    return {
        "experiment_id": experiment_id, "run_id": run_id, "run_artifact_uri": run.info.artifact_uri,
        "experiment_artifact_location": client.get_experiment(experiment_id).artifact_location,
        "model_name": f"{name}-model", "model_version": version.version,
        "model_version_source": version.source,  # storage_location is not in the API: see the test's SQL
        "logged_model_id": model.model_id,
        "logged_model_artifact_location": client.get_logged_model(model.model_id).artifact_location,
    }


def read(tracking_uri: str, state: dict, payload: str, work: str) -> dict:
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    name = Path(payload).name
    out: dict = {}

    def step(key, action):
        try:
            out[key] = {"ok": action()}
        except Exception as e:  # recorded, not raised: the test names every failing step
            chain = []  # the exception and its causes, outermost first
            while e is not None and len(chain) < 5:
                chain.append(f"{type(e).__name__}: {e}"[:300])
                e = e.__cause__ or e.__context__
            out[key] = {"error": " <- ".join(chain), "trace": traceback.format_exc()[-1500:]}

    # Control: this client cannot read S3 directly.
    step("direct_s3", lambda: sha256(mlflow.artifacts.download_artifacts(
        f"{state['run_artifact_uri']}/data/{name}", dst_path=f"{work}/direct")))
    step("run_artifact", lambda: sha256(client.download_artifacts(
        state["run_id"], f"data/{name}", f"{work}/run")))
    step("model_version", lambda: sha256(str(Path(mlflow.artifacts.download_artifacts(
        f"models:/{state['model_name']}/{state['model_version']}", dst_path=f"{work}/version")) / name)))
    step("logged_model", lambda: sha256(str(Path(mlflow.artifacts.download_artifacts(
        f"models:/{state['logged_model_id']}", dst_path=f"{work}/logged")) / name)))

    def new_run():
        new = Path(work) / "new.bin"
        new.write_bytes(b"logged after the cutover\n" + Path(payload).read_bytes()[:4096])
        run = client.create_run(state["experiment_id"], run_name="after-cutover")
        client.log_artifact(run.info.run_id, str(new), artifact_path="data")
        client.set_terminated(run.info.run_id)
        got = client.download_artifacts(run.info.run_id, "data/new.bin", f"{work}/new")
        return {"run_id": run.info.run_id, "artifact_uri": client.get_run(run.info.run_id).info.artifact_uri,
                "sha256": sha256(got), "expected": sha256(str(new))}

    step("new_run", new_run)
    return out


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "log":
        result = log(*args)
    else:
        result = read(args[0], json.loads(Path(args[1]).read_text()), args[2], args[3])
    print(json.dumps(result))
