"""Change safety (issue #15): the default stack, deletion protection on, is applied on the
emulator; then every change of README's table "What each setting change does" is planned
against copies of that state, PLANS_AT_ONCE at a time, and judged by invariants:

* a row that says the plan **fails at plan time** fails, and Terraform's error names the
  protected resource the row names (prevent_destroy), so nothing is touched;
* every other plan succeeds and destroys or replaces nothing that holds data or identity
  (the database, the artifact bucket, the KMS key, Redis, the VPC, the subnets, the password);
* a row whose instances "stay" plans no new launch template version; one that says "roll" does.

Then the tag change is applied for real: the launch template's latest version is unchanged
and no instance refresh has started.

The plans skip the refresh (``-refresh=false``): the state was written by the apply a moment
before, against the same emulator. Nothing is destroyed at the end: the emulator goes away.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.emulator.harness import Terraform, emulator_settings
from tests.support import ROOT, synth_json, terraform_copy

pytestmark = pytest.mark.emulator

DATA_BEARING = re.compile(
    r"^(aws_db_instance\.mlflow|aws_s3_bucket\.mlflow_artifacts|aws_kms_key\.mlflow|"
    r"aws_elasticache_replication_group\.mlflow|aws_vpc\.main|aws_subnet\.\w+\[\d+\]|"
    r"aws_ssm_parameter\.db_password|aws_s3_bucket_versioning\.mlflow_artifacts)$")


def readme_changes() -> dict[str, dict]:
    """README's table: change (as TOML) -> what it says the plan does and whether instances roll."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### What each setting change does", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.fullmatch(r"\| `(.+?)` \| (.+?) \| (stay|roll) \|", line.strip())
        if m:
            change, plan, instances = m.groups()
            blocked = plan.startswith("**fails at plan time**")
            rows[change] = {
                "overrides": tomllib.loads(change),
                "blocked": re.search(r"`(aws_[a-z0-9_]+\.[a-z0-9_]+(?:\[\d+\])?)`", plan).group(1) if blocked else None,
                "rolls": instances == "roll",
            }
    return rows


CHANGES = readme_changes()


def test_readme_lists_the_changes_of_the_issue():
    """The table covers what issue #15 measured (a guard against the parser silently finding fewer rows)."""
    keys = {k for row in CHANGES.values() for k in row["overrides"]}
    assert {"db_engine", "vpc_cidr", "nat_gateway_mode", "db_engine_version", "db_password_version",
            "mlflow_version", "tags", "instance_type", "az_count", "certificate_arn", "waf",
            "log_retention_days", "db_instance_class", "redis_node_type", "db_multi_az", "alert_emails",
            "asg_max_size"} <= keys
    assert sum(1 for row in CHANGES.values() if row["blocked"]) >= 3


def _plan(base: Path, workdir: Path, stack: dict) -> dict:
    """Plan stack against a copy of base's state: {"error": text} if the plan fails, else each
    changed resource's action ({"actions": {address: action}}) and whether the launch template
    gets a new version ("rolls").

    Read from Terraform's plan output (``plan_changes``), so each row costs one Terraform process:
    ``show -json`` would load the provider's schema a second time.
    """
    terraform_copy(stack, workdir)
    for name in ("terraform.tfstate", ".terraform.lock.hcl", "terraformrc"):
        shutil.copy2(base / name, workdir / name)
    (workdir / ".terraform").symlink_to(base / ".terraform")
    tf = Terraform(workdir)
    proc = tf("plan", "plan", "-input=false", "-refresh=false", "-lock=false", ok=(0, 1))
    if proc.returncode != 0:
        return {"error": proc.stdout + proc.stderr}
    return plan_changes(proc.stdout)


LAUNCH_TEMPLATE = "aws_launch_template.mlflow"
# Terraform 1.x's plan output: one header per changed resource, then its attributes.
_HEADER = re.compile(r"^  # (\S+) (?:\(.*?\) )?(will be created|will be updated in-place|must be replaced|"
                     r"will be destroyed|will be read during apply|will no longer be managed by Terraform|"
                     r"has moved to \S+|is tainted, so must be replaced)$", re.M)
_ACTIONS = {"will be created": "create", "will be updated in-place": "update", "must be replaced": "replace",
            "is tainted, so must be replaced": "replace", "will be destroyed": "delete",
            "will be read during apply": "read", "will no longer be managed by Terraform": "forget"}


def plan_changes(text: str) -> dict:
    """{"actions": {address: action}, "rolls": bool} from a plan's human-readable output: the
    launch template rolls the instances when it is replaced, or updated with a new latest_version
    (an update of its tags alone keeps the version)."""
    headers = list(_HEADER.finditer(text))
    summary = re.search(r"^Plan: (\d+) to add, (\d+) to change, (\d+) to destroy", text, re.M)
    if not headers:
        assert summary is None or summary.groups() == ("0", "0", "0"), f"changes but no headers:\n{text[-3000:]}"
        assert summary or "No changes." in text, f"neither changes nor 'No changes.':\n{text[-3000:]}"
    actions, blocks = {}, {}
    for k, header in enumerate(headers):
        end = headers[k + 1].start() if k + 1 < len(headers) else len(text)
        action = _ACTIONS.get(header.group(2), "move")
        if action != "move":
            actions[header.group(1)] = action
        blocks[header.group(1)] = text[header.end():end]
    lt = actions.get(LAUNCH_TEMPLATE)
    rolls = lt == "replace" or (lt == "update" and re.search(
        r"^\s+~ latest_version\s+=", blocks[LAUNCH_TEMPLATE], re.M) is not None)
    return {"actions": actions, "rolls": rolls}


def test_plan_changes_reads_terraforms_plan_output():
    """The parser against Terraform 1.11's output for the cases the rows meet."""
    text = """
Terraform will perform the following actions:

  # aws_db_instance.mlflow will be updated in-place
  ~ resource "aws_db_instance" "mlflow" {
      ~ instance_class = "db.t3.small" -> "db.t3.medium"
    }

  # aws_launch_template.mlflow will be updated in-place
  ~ resource "aws_launch_template" "mlflow" {
      ~ latest_version = 1 -> (known after apply)
      ~ user_data      = "IyEv" -> (known after apply)
    }

  # aws_s3_object.bootstrap_bundle must be replaced
+/- resource "aws_s3_object" "bootstrap_bundle" {
      ~ key = "bootstrap/a.tar.gz" -> "bootstrap/b.tar.gz" # forces replacement
    }

  # aws_vpc.main will be destroyed
  # (because aws_vpc.main is not in configuration)
  - resource "aws_vpc" "main" {
    }

Plan: 1 to add, 2 to change, 2 to destroy.
"""
    assert plan_changes(text) == {"actions": {
        "aws_db_instance.mlflow": "update", LAUNCH_TEMPLATE: "update",
        "aws_s3_object.bootstrap_bundle": "replace", "aws_vpc.main": "delete"}, "rolls": True}
    tags_only = text.replace("      ~ latest_version = 1 -> (known after apply)\n", "")
    assert plan_changes(tags_only)["rolls"] is False
    assert plan_changes("\nNo changes. Your infrastructure matches the configuration.\n") == {
        "actions": {}, "rolls": False}


# One applied stack for every row: each plan is one Terraform process against a copy of its state.
# (Two shards, each with its own apply, were no faster on 2 cores and cost a second apply's CPU.)
PLANS_AT_ONCE = 3


def test_setting_changes_against_an_applied_stack(moto_server, tmp_path):
    s = emulator_settings({"deletion_protection": True}, moto_server)
    base = tmp_path / "base"
    terraform_copy(synth_json(s), base)
    tf = Terraform(base)
    tf("init", "init", "-input=false")
    tf("apply", "apply", "-input=false", "-auto-approve")

    mine = CHANGES
    stacks = {change: synth_json(emulator_settings({"deletion_protection": True, **row["overrides"]}, moto_server))
              for change, row in mine.items()}
    with ThreadPoolExecutor(max_workers=PLANS_AT_ONCE) as pool:
        plans = dict(zip(stacks, pool.map(
            lambda item: _plan(base, tmp_path / f"change{list(stacks).index(item[0])}", item[1]),
            stacks.items())))

    problems = []
    for change, row in mine.items():
        plan = plans[change]
        if row["blocked"]:
            error = plan.get("error", "")
            if "Instance cannot be destroyed" not in error or f"Resource {row['blocked']} has" not in error:
                problems.append(f"{change}: expected to fail at plan time on {row['blocked']}; got "
                                + (error[-1500:] if error else "a plan that succeeds"))
            continue
        if "error" in plan:
            problems.append(f"{change}: the plan failed:\n{plan['error'][-1500:]}")
            continue
        lost = [address for address, action in plan["actions"].items()
                if action in ("delete", "replace") and DATA_BEARING.match(address)]
        if lost:
            problems.append(f"{change}: destroys or replaces {lost}")
        if plan["rolls"] != row["rolls"]:
            problems.append(f"{change}: README says instances {'roll' if row['rolls'] else 'stay'}, "
                            f"the plan {'makes' if not row['rolls'] else 'makes no'} new launch template version")
    assert not problems, "\n\n".join(problems)

    # The tag change, applied: tags change, the fleet does not roll.
    autoscaling = moto_server.client("autoscaling")
    lt_name = moto_server.client("ec2").describe_launch_templates()["LaunchTemplates"][0]["LaunchTemplateName"]

    def latest_version() -> int:
        return moto_server.client("ec2").describe_launch_templates(
            LaunchTemplateNames=[lt_name])["LaunchTemplates"][0]["LatestVersionNumber"]

    before = latest_version()
    tagged = emulator_settings({"deletion_protection": True, "tags": {"CostCenter": "ml"}}, moto_server)
    terraform_copy(synth_json(tagged), base)
    tf("apply-tags", "apply", "-input=false", "-auto-approve")
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[s.names.asg])["AutoScalingGroups"][0]
    assert {"Key": "CostCenter", "Value": "ml"} in [{"Key": t["Key"], "Value": t["Value"]} for t in group["Tags"]]
    assert latest_version() == before, "a tag change made a new launch template version"
    assert autoscaling.describe_instance_refreshes(AutoScalingGroupName=s.names.asg)["InstanceRefreshes"] == []
