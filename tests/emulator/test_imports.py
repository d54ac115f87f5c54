"""Import blocks from the `imports` setting: the plan adopts existing objects on the emulator."""
from __future__ import annotations

import json

import pytest

from tests.emulator.harness import TEST_PUBLIC_KEY, Terraform, emulator_settings
from tests.support import synth_json, terraform_copy

pytestmark = pytest.mark.emulator


def test_plan_imports_an_existing_key_pair_and_bucket(moto_server, tmp_path):
    settings = emulator_settings({}, moto_server)
    key_name = f"{settings.prefix}-key"
    moto_server.client("ec2").import_key_pair(KeyName=key_name, PublicKeyMaterial=TEST_PUBLIC_KEY.encode())
    bucket = "existing-mlflow-artifacts"
    moto_server.client("s3").create_bucket(Bucket=bucket)
    importing = settings.model_copy(update={"artifact_bucket_name": bucket, "imports": {
        "aws_key_pair.mlflow_key": key_name, "aws_s3_bucket.mlflow_artifacts": bucket}})

    workdir = tmp_path / "tf"
    terraform_copy(synth_json(importing), workdir)
    tf = Terraform(workdir)
    tf("init", "init", "-input=false")
    plan = tf("plan", "plan", "-input=false", "-out=tfplan")
    assert "Plan: 2 to import," in plan.stdout, plan.stdout[-4000:]
    changes = {c["address"]: c for c in json.loads(tf("show", "show", "-json", "tfplan").stdout)["resource_changes"]}
    assert changes["aws_key_pair.mlflow_key"]["change"]["importing"]["id"] == key_name
    assert changes["aws_s3_bucket.mlflow_artifacts"]["change"]["importing"]["id"] == bucket
