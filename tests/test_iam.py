"""IAM and data-perimeter assertions on the synthesized policy documents (issue 11, items 3-4).

moto enforces no key policy, trust condition or endpoint policy, so these assertions (with the
linters of tests/test_policy_scan.py) are the proof. Documents are read as AWS would see them
after apply (tests/policy_docs.py: account 123456789012, partition aws).
"""
from __future__ import annotations

import fnmatch
import json
import re
import tomllib

import pytest

from tests.policy_docs import ACCOUNT, resolve
from tests.support import DOMAIN_CONFIG, HCL_ADOPTION, ROOT, SECOND_CONFIG, settings_for, synth_json

SLACK = {"platform": "slack", "channel_id": "C0123ABCD", "team_id": "T0123ABCD", "region": "eu-west-1"}
# Every role the stack can create: chat alerts add the Chatbot role.
CONFIGS = {
    "default": {}, "second": SECOND_CONFIG, "domain": DOMAIN_CONFIG, "hcl": HCL_ADOPTION,
    "chat": {"chat_alerts": SLACK}, "eu": {"region": "eu-west-1", "environment": "eu"},
}
# The deployment's own parameter path, per configuration (modules/naming.py's two profiles).
OWN_PARAMETER_PATH = {"default": "/mlflow/dev", "second": "/mlflow/second", "domain": "/mlflow/domain",
                      "hcl": "/mlflow-dev", "chat": "/mlflow/dev", "eu": "/mlflow/eu"}
PARAMETER_READS = ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory")
# AWS managed policies the stack may attach, with what they grant (none reads parameters):
# AmazonRDSEnhancedMonitoringRole writes the RDSOSMetrics log group only.
ALLOWED_MANAGED_POLICIES = {"service-role/AmazonRDSEnhancedMonitoringRole"}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def stack(request) -> tuple[str, dict]:
    return request.param, synth_json(settings_for(**CONFIGS[request.param]))


def resolved(stack: dict, text: str) -> dict:
    return json.loads(resolve(stack, text))


def statements(doc: dict) -> list[dict]:
    st = doc["Statement"]
    return st if isinstance(st, list) else [st]


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def role_policies(stack: dict) -> dict[str, list[dict]]:
    """Role name -> the resolved documents of every policy attached to it or inline in it."""
    res = stack["resource"]
    out: dict[str, list[dict]] = {name: [] for name in res.get("aws_iam_role", {})}
    for a in res.get("aws_iam_role_policy_attachment", {}).values():
        role = re.fullmatch(r"\$\{aws_iam_role\.(\w+)\.name\}", a["role"]).group(1)
        arn = a["policy_arn"]
        own = re.fullmatch(r"\$\{aws_iam_policy\.(\w+)\.arn\}", arn)
        if own:
            out[role].append(resolved(stack, res["aws_iam_policy"][own.group(1)]["policy"]))
        else:
            managed = re.fullmatch(r"arn:\$\{data\.aws_partition\.current\.partition\}:iam::aws:policy/(.+)", arn)
            assert managed, f"{role}: attachment of an unexpected policy {arn}"
            assert managed.group(1) in ALLOWED_MANAGED_POLICIES, (
                f"{role}: AWS managed policy {managed.group(1)} attached; managed policies such as "
                "AmazonSSMManagedInstanceCore read every parameter in the account")
    for p in res.get("aws_iam_role_policy", {}).values():
        role = re.fullmatch(r"\$\{aws_iam_role\.(\w+)\.id\}", p["role"]).group(1)
        out[role].append(resolved(stack, p["policy"]))
    return out


def test_no_role_reads_parameters_outside_its_deployment(stack):
    config, s = stack
    region = s["provider"]["aws"][0]["region"]
    own = f"arn:aws:ssm:{region}:{ACCOUNT}:parameter{OWN_PARAMETER_PATH[config]}"
    readers = []
    for role, docs in role_policies(s).items():
        for doc in docs:
            for st in statements(doc):
                assert "NotAction" not in st and "NotResource" not in st, f"{role}: NotAction/NotResource"
                if st["Effect"] != "Allow":
                    continue
                reads = [a for a in PARAMETER_READS
                         if any(fnmatch.fnmatchcase(a.lower(), p.lower()) for p in as_list(st["Action"]))]
                if reads:
                    readers.append(role)
                    for r in as_list(st["Resource"]):
                        assert r in (own, f"{own}/*"), f"[{config}] {role} may {reads} on {r}, outside {own}"
    assert readers == ["mlflow_instance_role"], readers  # the instances read their own parameters


def test_session_manager_policy_is_only_what_the_agent_needs(stack):
    _, s = stack
    res = s["resource"]
    attachment = res["aws_iam_role_policy_attachment"]["mlflow_ssm_managed_policy"]
    assert attachment["policy_arn"] == "${aws_iam_policy.mlflow_session_manager_policy.arn}"
    doc = resolved(s, res["aws_iam_policy"]["mlflow_session_manager_policy"]["policy"])
    granted = {a: st["Resource"] for st in statements(doc) for a in as_list(st["Action"])}
    region = s["provider"]["aws"][0]["region"]
    assert granted == {
        "ssm:UpdateInstanceInformation": f"arn:aws:ec2:{region}:{ACCOUNT}:instance/*",
        "ssmmessages:CreateControlChannel": "*", "ssmmessages:CreateDataChannel": "*",
        "ssmmessages:OpenControlChannel": "*", "ssmmessages:OpenDataChannel": "*",
    }


def test_every_service_trust_policy_but_ec2s_names_the_account(stack):
    config, s = stack
    seen = set()
    for name, role in s["resource"]["aws_iam_role"].items():
        for st in statements(json.loads(role["assume_role_policy"])):
            services = as_list(st["Principal"].get("Service", []))
            assert services and set(st["Principal"]) == {"Service"}, f"{name}: only service principals expected"
            principals = {re.fullmatch(r"\$\{data\.aws_service_principal\.(\w+)\.name\}", x).group(1)
                          for x in services}
            seen |= principals
            if principals == {"ec2"}:
                continue  # instances assume their own role: no service acts for another account
            condition = st.get("Condition", {})
            sources = {k: v for op in condition.values() for k, v in op.items()
                       if k in ("aws:SourceAccount", "aws:SourceArn")}
            assert sources, f"[{config}] {name}: trust of {principals} has no aws:SourceAccount/SourceArn"
            assert sources.get("aws:SourceAccount", "${data.aws_caller_identity.current.account_id}") == \
                "${data.aws_caller_identity.current.account_id}", f"{name}: {sources}"
    expected = {"ec2", "vpc_flow_logs", "monitoring_rds"} | ({"chatbot"} if config == "chat" else set())
    assert seen == expected


def test_service_principals_and_endpoint_names_come_from_the_partition(stack):
    _, s = stack
    text = json.dumps(s)
    # The Auto Scaling service-linked role's path is the same in every partition.
    left = set(re.findall(r"[\w.\-/]*amazonaws\.com[\w.\-/]*", text)) - {
        "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"}
    assert not left and "com.amazonaws" not in text, left
    for name, p in s["data"]["aws_service_principal"].items():
        assert name == re.sub(r"[^a-zA-Z0-9_]", "_", p["service_name"])
    region = s["provider"]["aws"][0]["region"]
    for svc, e in s["resource"]["aws_vpc_endpoint"].items():
        assert e["service_name"] == f"${{data.aws_partition.current.reverse_dns_prefix}}.{region}.{svc}"


def _key_policy(s: dict) -> list[dict]:
    return statements(resolved(s, s["resource"]["aws_kms_key"]["mlflow"]["policy"]))


def test_instance_role_uses_the_key_only_through_ssm_and_s3(stack):
    _, s = stack
    region = s["provider"]["aws"][0]["region"]
    doc = resolved(s, s["resource"]["aws_iam_policy"]["mlflow_kms_policy"]["policy"])
    for st in statements(doc):
        assert st["Resource"] == f"arn:aws:kms:{region}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
        assert st["Condition"] == {"StringEquals": {"kms:ViaService": [
            f"ssm.{region}.amazonaws.com", f"s3.{region}.amazonaws.com"]}}, st
        assert set(as_list(st["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey"}


def test_key_policy_logs_statement_names_exactly_the_stacks_encrypted_log_groups(stack):
    config, s = stack
    region = s["provider"]["aws"][0]["region"]
    groups = s["resource"]["aws_cloudwatch_log_group"]
    encrypted = {f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{resolve(s, g['name'])}"
                 for g in groups.values() if g.get("kms_key_id") == "${aws_kms_key.mlflow.arn}"}
    assert len(encrypted) == 5, encrypted  # 3 instance groups, flow logs, Redis slow log
    (logs,) = [st for st in _key_policy(s) if st["Principal"] == {"Service": f"logs.{region}.amazonaws.com"}]
    (values,) = [v for op in logs["Condition"].values() for k, v in op.items()
                 if k == "kms:EncryptionContext:aws:logs:arn"]
    assert set(values) == encrypted and not any("*" in v for v in values), f"[{config}] {values}"


def test_key_policy_has_no_principal_that_does_not_need_the_key(stack):
    _, s = stack
    services = {x for st in _key_policy(s) for x in as_list(st["Principal"].get("Service", []))
                if isinstance(st["Principal"], dict)}
    region = s["provider"]["aws"][0]["region"]
    # SNS itself never calls KMS for the topic: publishers do (alarms as cloudwatch, Auto Scaling
    # notifications as its service-linked role, matched by aws:PrincipalArn).
    assert services == {f"logs.{region}.amazonaws.com", "cloudwatch.amazonaws.com"}
    for st in _key_policy(s):
        if st["Principal"] != {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}:
            assert st.get("Condition"), f"{st.get('Sid')}: a key statement for others needs conditions"


def test_s3_endpoint_policy_allows_exactly_the_artifact_bucket_and_al2023_repositories(stack):
    """The runtime tier has no S3 endpoint (moto), so it cannot prove dnf works through it: this can."""
    config, s = stack
    region = s["provider"]["aws"][0]["region"]
    bucket = resolve(s, s["resource"]["aws_s3_bucket"]["mlflow_artifacts"]["bucket"])
    doc = resolved(s, s["resource"]["aws_vpc_endpoint"]["s3"]["policy"])
    resources = sorted(r for st in statements(doc) for r in as_list(st["Resource"]))
    assert resources == sorted([f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*",
                                f"arn:aws:s3:::al2023-repos-{region}-de612dc2/*"]), f"[{config}] {resources}"
    for st in statements(doc):
        assert st["Effect"] == "Allow" and "*" not in as_list(st["Action"])
        if "al2023-repos" in str(st["Resource"]):
            assert st["Action"] == "s3:GetObject"
        else:
            assert st["Condition"] == {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}


def test_terraform_and_provider_versions_are_pinned():
    s = synth_json(settings_for())
    tf = s["terraform"]
    assert tf["required_version"] == ">= 1.11"  # ephemeral resources, write-only arguments
    assert tf["required_providers"]["aws"] == {"source": "aws", "version": "5.100.0"}
    # cdktf-cdktf-provider-random 12.0.1 (the Pipfile's pin) is built for hashicorp/random 3.7.2.
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    assert pipfile["packages"]["cdktf-cdktf-provider-random"] == "==12.0.1"
    assert tf["required_providers"]["random"] == {"source": "hashicorp/random", "version": "3.7.2"}


def test_final_snapshot_name_is_unique_per_creation_and_stable_across_plans(stack):
    _, s = stack
    db = s["resource"]["aws_db_instance"]["mlflow"]
    ident = db["final_snapshot_identifier"]
    # random_id.bucket_suffix is new when the environment is recreated and fixed in between.
    assert ident.endswith("-db-final-${random_id.bucket_suffix.hex}") and "timestamp" not in ident
    assert db["skip_final_snapshot"] is False
