"""The public HCL deployment as an emulator fixture (tests/emulator/hcl_deployment).

Applies the fixture once on a fresh moto server and checks the resulting state
(``terraform show -json``) against the facts in shared/spec (or their vendored
copies in tests/spec): (a) the addresses, (b) every identity row, (c) the other
attributes the facts' state records; then that a re-plan changes nothing but
the emulator's known read-back quirks, which the facts' state shows too.

Run: .venv/bin/python -m pytest tests/emulator/test_hcl_fixture.py -q
"""
from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.emulator.conftest import MotoServer, start_moto, stop_moto
from tests.emulator.hcl_fixture import (
    OMITTED,
    SHARED_SPEC,
    VENDORED_SPEC,
    apply_hcl_deployment,
    attribute_mismatches,
    expanded_hcl_addresses,
    expected_fixture_addresses,
    facts_state,
    hcl_state_resources,
    identity_failures,
    identity_rows,
)
from tests.support import terraform, terraform_env

SPEC_FILES = ("hcl-deployment-addresses.tsv", "hcl-deployment-identity.tsv", "hcl-deployment-state.json")

# Attributes a re-plan of the applied fixture updates in place, because moto
# reads them back differently from what was sent. The facts' state holds the
# same read-back values (checked below), so the HCL deployment has them too.
#   aws_autoscaling_policy: moto's DescribePolicies returns no Enabled, so the
#     state reads enabled = false and an empty predictive_scaling_configuration.
#   aws_elasticache_replication_group.maintenance_window: moto echoes the
#     configured "Sun:07:00-Sun:09:00"; the provider plans it lowercased.
MOTO_READBACK_UPDATES = {
    "aws_autoscaling_policy": {"enabled", "predictive_scaling_configuration"},
    "aws_elasticache_replication_group": {"maintenance_window"},
}


@dataclass
class Applied:
    server: MotoServer
    workdir: Path
    resources: dict
    timings: dict


@pytest.fixture(scope="module")
def applied(emulator_tools, tmp_path_factory):
    base = tmp_path_factory.mktemp("hcl-fixture")
    server = start_moto(base / "moto.log")
    try:
        state = apply_hcl_deployment(server, base / "deployment")
        resources = hcl_state_resources(state.parent)
        timings = json.loads((state.parent / "timings.json").read_text())
        yield Applied(server, state.parent, resources, timings)
    finally:
        stop_moto(server)


# --------------------------------------------------------------------------- unit tier


@pytest.mark.parametrize("name", SPEC_FILES)
def test_vendored_spec_files_are_the_shared_ones(name):
    if not (SHARED_SPEC / name).exists():
        pytest.skip("shared/spec is not beside this checkout")
    assert (VENDORED_SPEC / name).read_text() == (SHARED_SPEC / name).read_text()


def test_omitted_addresses_are_hcl_addresses_missing_from_the_facts_state():
    facts = facts_state()
    hcl = expanded_hcl_addresses()
    for address in OMITTED:
        assert address in hcl and address not in facts, address


def test_expected_addresses_are_the_facts_state_addresses():
    # The count expansion with the deployed inputs gives exactly what the facts' state holds.
    assert expected_fixture_addresses() == set(facts_state())


def test_the_checks_hold_on_the_facts_state_itself():
    facts = facts_state()
    assert identity_failures(facts) == []
    assert attribute_mismatches(facts) == []


def test_identity_checks_catch_a_wrong_value():
    facts = json.loads(json.dumps(facts_state()))
    facts["module.networking.aws_subnet.public[0]"]["cidr_block"] = "10.0.99.0/24"
    facts["module.networking.aws_nat_gateway.main[1]"]["subnet_id"] = \
        facts["module.networking.aws_subnet.public[0]"]["id"]
    facts["module.mlflow.aws_launch_template.mlflow"]["name_prefix"] = "mlflow-dev-l"
    failures = "\n".join(identity_failures(facts))
    assert "aws_subnet.public[0].cidr_block" in failures
    assert "aws_nat_gateway.main[1].subnet_id" in failures
    assert "aws_launch_template.mlflow.name" in failures


# --------------------------------------------------------------------------- emulator tier


def _a_addresses_are_the_hcl_deployments(applied, record_emulator_result):
    record_emulator_result({
        "config": "HCL deployment fixture (tests/emulator/hcl_deployment)",
        "resources": len(applied.resources),
        "phases": dict(applied.timings),
        "total": sum(applied.timings.values()),
        "moto_rss_mb": applied.server.peak_rss_mb(),
        # largest child this pytest process has waited for (terraform or its provider)
        "terraform_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    })
    ours = set(applied.resources)
    expected = expected_fixture_addresses()
    assert not expected - ours, f"missing: {sorted(expected - ours)}"
    assert not ours - expected, f"unexpected: {sorted(ours - expected)}"


def _b_identity_attributes_are_the_deployed_ones(applied):
    assert len(identity_rows()) > 60
    failures = identity_failures(applied.resources)
    assert not failures, "identity rows that do not hold:\n" + "\n".join(failures)


# The attributes the brief names, compared with hcl-deployment-state.json's values.
SELECTED = {
    "module.database.aws_db_instance.mlflow": (
        "engine", "engine_version", "instance_class", "allocated_storage", "max_allocated_storage",
        "storage_type", "storage_encrypted", "kms_key_id", "db_name", "username", "port",
        "parameter_group_name", "db_subnet_group_name", "vpc_security_group_ids",
        "backup_retention_period", "monitoring_interval", "multi_az", "publicly_accessible"),
    "module.database.aws_db_parameter_group.mlflow": ("name", "family", "parameter"),
    "module.database.aws_elasticache_replication_group.mlflow[0]": (
        "node_type", "engine", "engine_version", "at_rest_encryption_enabled", "transit_encryption_enabled",
        "kms_key_id", "num_cache_clusters", "port", "security_group_ids", "log_delivery_configuration"),
    "module.security.aws_security_group.alb": ("ingress", "egress", "vpc_id"),
    "module.security.aws_security_group.mlflow_app": ("ingress", "egress", "vpc_id"),
    "module.security.aws_security_group.database": ("ingress", "egress", "vpc_id"),
    "module.security.aws_security_group.elasticache": ("ingress", "egress", "vpc_id"),
    "module.networking.aws_security_group.vpc_endpoints[0]": ("ingress", "egress", "vpc_id"),
    "module.mlflow.aws_s3_bucket.mlflow_artifacts": ("bucket", "versioning", "server_side_encryption_configuration"),
    "module.mlflow.aws_s3_bucket.alb_logs": ("bucket", "server_side_encryption_configuration"),
    "module.mlflow.aws_lb.mlflow": ("name", "internal", "access_logs", "subnets", "security_groups"),
    "module.mlflow.aws_lb_listener.mlflow": ("port", "protocol", "default_action"),
    "module.mlflow.aws_lb_target_group.mlflow": ("name", "port", "protocol", "health_check", "stickiness"),
    "module.mlflow.aws_launch_template.mlflow": (
        "image_id", "instance_type", "key_name", "block_device_mappings", "metadata_options",
        "iam_instance_profile", "vpc_security_group_ids"),
    "module.mlflow.aws_autoscaling_group.mlflow": (
        "min_size", "max_size", "desired_capacity", "health_check_type", "vpc_zone_identifier",
        "target_group_arns", "launch_template", "tag"),
    "aws_key_pair.mlflow_key": ("key_name", "public_key", "fingerprint"),
    "aws_sns_topic.alerts": ("name", "kms_master_key_id"),
}


def _c_selected_attributes_match_the_facts_state(applied):
    mismatches = attribute_mismatches(applied.resources, only=SELECTED)
    assert not mismatches, "\n".join(mismatches)


def _c_every_recorded_attribute_matches_the_facts_state(applied):
    # Every attribute hcl-deployment-state.json records (ids, ARNs, IPs and
    # generated name suffixes compared by the resource they identify).
    mismatches = attribute_mismatches(applied.resources)
    assert not mismatches, "\n".join(mismatches)


def _replan_changes_only_the_emulators_readback_quirks(applied):
    env = terraform_env(applied.workdir)
    start = time.monotonic()
    terraform(applied.workdir, "plan", "-input=false", "-no-color", "-out=replan.tfplan", env=env)
    applied.timings["replan"] = round(time.monotonic() - start, 1)
    plan = json.loads(terraform(applied.workdir, "show", "-json", "replan.tfplan", env=env).stdout)
    facts = facts_state()
    unexpected = []
    for rc in plan.get("resource_changes", []):
        actions, change = rc["change"]["actions"], rc["change"]
        if actions == ["no-op"]:
            continue
        before, after = change.get("before") or {}, change.get("after") or {}
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        allowed = MOTO_READBACK_UPDATES.get(rc["type"], set())
        if actions != ["update"] or not changed <= allowed:
            unexpected.append(f"{rc['address']}: {actions} {sorted(changed)}")
            continue
        for key in changed:  # the facts' state read back the same value
            assert facts[rc["address"]][key] == before[key], (rc["address"], key)
    assert not unexpected, "re-plan changes beyond moto's read-back quirks:\n" + "\n".join(unexpected)


@pytest.mark.emulator
def test_the_applied_fixture_is_the_hcl_deployment(applied, record_emulator_result):
    """One test, one apply: under pytest-xdist a module fixture would be applied once per worker."""
    _a_addresses_are_the_hcl_deployments(applied, record_emulator_result)
    _b_identity_attributes_are_the_deployed_ones(applied)
    _c_selected_attributes_match_the_facts_state(applied)
    _c_every_recorded_attribute_matches_the_facts_state(applied)
    _replan_changes_only_the_emulators_readback_quirks(applied)
