"""Real Terraform on the synthesized JSON: init from the offline mirror, validate.

What the test changes, and why: the hashicorp/random provider cannot be
downloaded on these machines, so Terraform runs on a copy of the JSON where
random_id.bucket_suffix is replaced by a fixed hex value (tests/support.py,
terraform_copy). Everything else is the synthesized stack as users get it.
"""
from __future__ import annotations

import json

import pytest

from tests.support import DOMAIN_CONFIG, HCL_ADOPTION, SECOND_CONFIG, settings_for, synth_json, terraform, terraform_copy

pytestmark = pytest.mark.terraform


@pytest.mark.parametrize("config", [{}, SECOND_CONFIG, {"waf": True, **HCL_ADOPTION}, DOMAIN_CONFIG],
                         ids=["default", "second", "waf-and-adoption", "domain"])
def test_terraform_validate_accepts_the_stack(tmp_path, config):
    stack = synth_json(settings_for(**config))
    terraform_copy(stack, tmp_path)
    terraform(tmp_path, "init", "-backend=false", "-input=false", "-no-color")
    out = terraform(tmp_path, "validate", "-json", "-no-color")
    result = json.loads(out.stdout)
    assert result["valid"] is True and result["error_count"] == 0, out.stdout
    lock = (tmp_path / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock and 'version     = "5.100.0"' in lock


def test_terraform_validate_catches_a_broken_reference(tmp_path):
    stack = synth_json(settings_for())
    stack["resource"]["aws_autoscaling_group"]["mlflow"]["vpc_zone_identifier"] = "${aws_subnet.privat[*].id}"
    terraform_copy(stack, tmp_path)
    terraform(tmp_path, "init", "-backend=false", "-input=false", "-no-color")
    out = terraform(tmp_path, "validate", "-json", "-no-color", check=False)
    assert json.loads(out.stdout)["valid"] is False
