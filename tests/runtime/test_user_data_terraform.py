"""Terraform itself builds the launch template's user data: base64encode(join(...)) of the
stub's text with the artifact bucket's name filled in. Evaluated here with a real bucket
name, it must decode to exactly render_user_data's text (marked ``terraform``).
"""
from __future__ import annotations

import json

import pytest

from modules.mlflow_instance import USER_DATA_LIMIT, render_user_data
from tests.support import settings_for, synth_json, terraform

pytestmark = pytest.mark.terraform

BUCKET = "mlflow-dev-artifacts-0a1b2c3d"


def decoded_by_terraform(expression: str, workdir) -> str:
    """Terraform's value of the user-data expression, the bucket reference replaced by BUCKET."""
    literal = expression.replace("aws_s3_bucket.mlflow_artifacts.bucket", json.dumps(BUCKET))
    (workdir / "main.tf.json").write_text(json.dumps({
        "locals": {"user_data": literal},
        "output": {"user_data": {"value": "${base64decode(local.user_data)}"}},
    }))
    terraform(workdir, "init", "-input=false", "-no-color")
    terraform(workdir, "apply", "-auto-approve", "-input=false", "-no-color")
    return terraform(workdir, "output", "-raw", "user_data").stdout


def test_terraform_decodes_the_user_data_to_the_rendered_stub(tmp_path):
    stack = synth_json(settings_for())
    key = stack["resource"]["aws_s3_object"]["bootstrap_bundle"]["key"]
    sha256 = key.removeprefix("bootstrap/").removesuffix(".tar.gz")
    expression = stack["resource"]["aws_launch_template"]["mlflow"]["user_data"]
    text = decoded_by_terraform(expression, tmp_path)
    assert text == render_user_data(BUCKET, key, sha256, "us-east-1")
    assert f"bucket='{BUCKET}'\n" in text and len(text.encode()) <= USER_DATA_LIMIT
