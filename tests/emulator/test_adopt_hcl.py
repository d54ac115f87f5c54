"""Adopt someone else's deployment: the public HCL stack, built on the emulator from
the facts in shared/spec (tests/emulator/hcl_fixture.py) and checked against them
(addresses, identity rows, every recorded attribute, a re-plan with only moto's
read-back quirks), then taken over by our stack with the settings docs/adoption.md
tells users to write.

What must hold, as the adoption issue states it:
- the plan succeeds (no cycle), also when the DB parameter group really must be
  replaced (an engine family change) while the removed blocks are still in play;
- nothing is deleted without a replacement;
- no VPC, subnet, DB instance, bucket, Redis group, KMS key or SecureString is replaced;
- every other replacement is listed in docs/adoption.md with its reason;
- the DB master password is not changed and the artifact bucket is kept;
- apply succeeds, the re-plan is empty, and boto3 shows the same DB instance,
  buckets, Redis group, VPC, subnets and key before and after.

The hashicorp/random provider is not on these machines: both the fixture and our
stack use the literal RANDOM_SUFFIX_STANDIN for random_id.bucket_suffix's hex
(tests/support.py terraform_copy), so the bucket names agree as in a real state.
"""
from __future__ import annotations

import json
import re
import resource
import shutil

import pytest

from tests.emulator.hcl_fixture import apply_hcl_deployment, check_applied_fixture
from tests.emulator.harness import Terraform, emulator_settings
from tests.support import HCL_ADOPTION, ROOT, synth_json, terraform_copy

pytestmark = pytest.mark.emulator

# Types whose replacement loses data or identity users depend on.
DATA_BEARING = {
    "aws_vpc", "aws_subnet", "aws_db_instance", "aws_s3_bucket", "aws_elasticache_replication_group",
    "aws_kms_key",
}
REPLACE = (["delete", "create"], ["create", "delete"])


def documented_replacements() -> set[str]:
    """Addresses listed in docs/adoption.md's 'Replaced' section (`address` items)."""
    text = (ROOT / "docs" / "adoption.md").read_text()
    section = re.search(r"^### Replaced\n(.*?)(?=^##)", text, re.S | re.M)
    assert section, "docs/adoption.md has no '### Replaced' section"
    return set(re.findall(r"^- `([^`]+)`", section.group(1), re.M))


def snapshot(server) -> dict:
    """The identities users keep: what boto3 sees of the data-bearing objects."""
    ec2, rds, s3 = server.client("ec2"), server.client("rds"), server.client("s3")
    cache, kms, ssm = server.client("elasticache"), server.client("kms"), server.client("ssm")
    return {
        "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")),
        "subnets": sorted((s["SubnetId"], s["CidrBlock"]) for s in ec2.describe_subnets()["Subnets"]
                          if not s.get("DefaultForAz")),
        "db": [(d["DBInstanceIdentifier"], d["DbiResourceId"]) for d in rds.describe_db_instances()["DBInstances"]],
        "buckets": sorted(b["Name"] for b in s3.list_buckets()["Buckets"]),
        "redis": [g["ReplicationGroupId"] for g in cache.describe_replication_groups()["ReplicationGroups"]],
        "keys": sorted(k["KeyId"] for k in kms.list_keys()["Keys"]),
        "db_password": ssm.get_parameter(Name="/mlflow-dev/database/password", WithDecryption=True)
        ["Parameter"]["Value"],
    }


def plan(tf: Terraform, name: str) -> list[dict]:
    tf(f"plan-{name}", "plan", "-input=false", f"-out={name}.tfplan")
    return json.loads(tf(f"show-{name}", "show", "-json", f"{name}.tfplan").stdout)["resource_changes"]


def test_the_hcl_deployment_is_adopted_without_losing_anything(moto_server, tmp_path, record_emulator_result):
    # (0) what is adopted is the HCL deployment: the applied fixture against the facts in shared/spec
    state = apply_hcl_deployment(moto_server, tmp_path / "hcl")
    count, timings = check_applied_fixture(state.parent)
    record_emulator_result({
        "config": "HCL deployment fixture (tests/emulator/hcl_deployment)",
        "resources": count,
        "phases": timings, "total": sum(timings.values()),
        "moto_rss_mb": moto_server.peak_rss_mb(),
        "terraform_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    })
    before = snapshot(moto_server)

    settings = emulator_settings(HCL_ADOPTION, moto_server)
    workdir = tmp_path / "adopt"
    terraform_copy(synth_json(settings), workdir)
    shutil.copy(state, workdir / "terraform.tfstate")
    tf = Terraform(workdir)
    tf("init", "init", "-input=false")

    # (1) an engine family change needs a new DB parameter group beside the old
    # one while the removed blocks still forget the HCL's leftovers: no cycle.
    family = tmp_path / "family"
    shutil.copytree(workdir, family, symlinks=True)
    terraform_copy(synth_json(settings.model_copy(update={"db_engine_version": "8.4"})), family)
    family_changes = {c["address"]: c for c in plan(Terraform(family), "family")}
    assert family_changes["aws_db_parameter_group.mlflow"]["change"]["actions"] == ["create", "delete"]
    assert family_changes["aws_db_instance.mlflow"]["change"]["actions"] == ["update"]

    # (2) the adoption plan itself
    changes = plan(tf, "adopt")
    by_address = {c["address"]: c for c in changes if c["mode"] == "managed"}
    actions = {a: c["change"]["actions"] for a, c in by_address.items()}
    deleted = sorted(a for a, act in actions.items() if act == ["delete"])
    assert not deleted, f"deleted without a replacement: {deleted}"
    replaced = {a for a, act in actions.items() if act in REPLACE}
    lost = sorted(a for a in replaced if by_address[a]["type"] in DATA_BEARING)
    assert not lost, f"data-bearing resources replaced: {lost}"
    secure = sorted(a for a in replaced if by_address[a]["type"] == "aws_ssm_parameter"
                    and by_address[a]["change"]["before"]["type"] == "SecureString")
    assert not secure, f"SecureString parameters replaced: {secure}"
    undocumented = sorted(replaced - documented_replacements())
    assert not undocumented, f"replaced but not listed in docs/adoption.md: {undocumented}"

    db = by_address["aws_db_instance.mlflow"]["change"]
    assert db["after"]["password"] == db["before"]["password"], "the adoption would change the master password"
    assert db["after"].get("password_wo_version") is None
    assert db["after"]["engine_version"] == db["before"]["engine_version"] == "8.0.43"
    bucket = by_address["aws_s3_bucket.mlflow_artifacts"]
    assert bucket["previous_address"] == "module.mlflow.aws_s3_bucket.mlflow_artifacts"
    assert actions["aws_s3_bucket.mlflow_artifacts"] in (["no-op"], ["update"])

    summary = {
        "moved": sum(1 for c in changes if c.get("previous_address")),
        "updated": sum(1 for act in actions.values() if act == ["update"]),
        "replaced": len(replaced),
        "created": sum(1 for act in actions.values() if act == ["create"]),
        "forgotten": sum(1 for c in changes if c["change"]["actions"] == ["forget"]),
    }
    print(f"\nadoption plan: {summary}; replaced: {sorted(replaced)}")

    # (3) apply, then nothing left to do, and the same objects underneath
    tf("apply", "apply", "-input=false", "-auto-approve", "adopt.tfplan")
    replan = tf("replan", "plan", "-input=false", "-detailed-exitcode", ok=(0, 2))
    assert replan.returncode == 0, f"re-plan after adoption is not empty:\n{replan.stdout[-6000:]}"
    after = snapshot(moto_server)
    for key in ("vpcs", "db", "redis", "keys", "db_password"):
        assert after[key] == before[key], key
    assert set(before["buckets"]) <= set(after["buckets"])
    assert set(before["subnets"]) <= set(after["subnets"])
