"""After a real apply on the emulator, no generated secret is in the synthesized
JSON, the plan or the state.

Adoption of the HCL deployment is proven from that deployment's own state, in
test_adopt_hcl.py.
"""
from __future__ import annotations

import json

import pytest

from tests.emulator.test_deploy import Terraform, emulator_settings
from tests.support import synth_json, terraform_copy

pytestmark = pytest.mark.emulator


def test_generated_secrets_stay_out_of_json_plan_and_state(moto_server, tmp_path):
    settings = emulator_settings({}, moto_server)
    stack = synth_json(settings)
    workdir = tmp_path / "tf"
    config_path = terraform_copy(stack, workdir)
    tf = Terraform(workdir)
    tf("init", "init", "-input=false")
    tf("plan", "plan", "-input=false", "-out=tfplan")
    plan_json = tf("show", "show", "-json", "tfplan").stdout
    try:
        tf("apply", "apply", "-input=false", "-auto-approve", "tfplan")

        # (1) the secrets, read back from the emulator's Parameter Store
        ssm = moto_server.client("ssm")
        secrets = {
            name: ssm.get_parameter(Name=f"{settings.ssm_prefix}/{name}", WithDecryption=True)["Parameter"]["Value"]
            for name in ("db/password", "mlflow/admin_password", "mlflow/flask_secret_key")
        }
        assert len(secrets["db/password"]) == 32 and len(secrets["mlflow/flask_secret_key"]) == 64
        state_text = (workdir / "terraform.tfstate").read_text()
        places = {"synthesized JSON": config_path.read_text(), "plan JSON": plan_json, "state": state_text}
        for name, value in secrets.items():
            for place, text in places.items():
                assert value not in text, f"{name} found in the {place}"
        planned = {c["address"]: c for c in json.loads(plan_json)["resource_changes"]}
        assert planned["aws_db_instance.mlflow"]["change"]["after"].get("password") is None
        assert planned["aws_ssm_parameter.db_password"]["change"]["after"].get("value") is None

    finally:
        tf("destroy", "destroy", "-input=false", "-auto-approve")
