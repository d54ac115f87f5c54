"""After a real apply on the emulator: (1) no generated secret is in the synthesized
JSON, the plan or the state; (2) a state laid out like the guide's HCL deployment
is adopted with moves only: 0 to add, 0 to change, 0 to destroy.

For (2) the test applies our default stack, then `terraform state mv`s each of our
resources to its address in tests/spec/hcl-deployment-addresses.tsv (that is what
a state of that deployment looks like), then plans with adopt_hcl_deployment on.
"""
from __future__ import annotations

import json
import re

import pytest

from modules.adoption import MOVED, listener_moves
from tests.emulator.test_deploy import Terraform, emulator_settings
from tests.support import synth_json, terraform_copy

pytestmark = pytest.mark.emulator


def _state_moves(https: bool) -> list[tuple[str, str]]:
    """(our address, HCL address) per resource: counted ones move whole, with all instances."""
    moves = []
    for src, dst in {**MOVED, **listener_moves(https)}.items():
        if src.endswith("[*]"):
            moves.append((dst[:-3], src[:-3]))
        else:
            moves.append((dst, src))
    return moves


def test_secrets_stay_out_and_the_hcl_deployment_is_adopted_with_moves_only(moto_server, tmp_path):
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

        # (2) lay the state out like the HCL deployment's
        for ours, theirs in _state_moves(settings.https):
            tf("state-mv", "state", "mv", ours, theirs)
        listed = tf("state-list", "state", "list").stdout.split()
        assert "module.networking.aws_subnet.public[1]" in listed and "aws_subnet.public[0]" not in listed
        assert "module.networking.aws_vpc_endpoint.s3[0]" in listed

        adopting = synth_json(settings.model_copy(update={"adopt_hcl_deployment": True}))
        terraform_copy(adopting, workdir)
        plan = tf("plan-adopt", "plan", "-input=false", "-out=adopt.tfplan")
        summary = re.search(r"Plan: (\d+) to add, (\d+) to change, (\d+) to destroy", plan.stdout)
        no_changes = "No changes." in plan.stdout
        assert no_changes or (summary and summary.groups() == ("0", "0", "0")), plan.stdout[-6000:]
        changes = json.loads(tf("show-adopt", "show", "-json", "adopt.tfplan").stdout)["resource_changes"]
        moved = {c["previous_address"]: c["address"] for c in changes if c.get("previous_address")}
        expected = {b["from"]: b["to"] for b in adopting["moved"]}
        assert moved == expected, f"moves missing or unexpected: {set(expected) ^ set(moved)}"
        assert all(c["change"]["actions"] == ["no-op"] for c in changes if c["mode"] == "managed")
        # applying the moves brings the state back to our addresses
        tf("apply-adopt", "apply", "-input=false", "-auto-approve", "adopt.tfplan")
        assert "aws_subnet.public[1]" in tf("state-list", "state", "list").stdout.split()
    finally:
        tf("destroy", "destroy", "-input=false", "-auto-approve")
