"""The key policy and the instance policies as pure functions: checked without a synth."""
from __future__ import annotations

import json

from modules.security import (
    SESSION_MANAGER_ACTIONS,
    instance_policy_documents,
    key_policy_document,
    session_manager_policy_document,
)

ACCOUNT = "123456789012"
COMMON = dict(partition="aws-us-gov", region="us-gov-west-1", account_id=ACCOUNT, dns_suffix="amazonaws.com")


def statements(text: str) -> dict[str, dict]:
    doc = json.loads(text)
    assert doc["Version"] == "2012-10-17"
    return {s.get("Sid", str(i)): s for i, s in enumerate(doc["Statement"])}


def key_policy(groups: list[str]) -> dict[str, dict]:
    return statements(key_policy_document(**COMMON, log_group_names=groups, cloudwatch_principal="cw.example"))


def instance_policies(**overrides) -> dict[str, dict[str, dict]]:
    kwargs = dict(COMMON, artifact_bucket_name="my-artifacts", log_group_names=["/a/mlflow", "/a/nginx"],
                  ssm_prefix="/mlflow/dev", metrics_namespace="MLflow/x", kms_key_arn="arn:key")
    kwargs.update(overrides)
    return {k: statements(v) for k, v in instance_policy_documents(**kwargs).items()}


def test_key_policy_names_exactly_the_given_log_groups():
    s = key_policy(["/g/one", "/g/two"])["CloudWatchLogsEncryptsThisDeploymentsLogGroups"]
    assert s["Principal"] == {"Service": "logs.us-gov-west-1.amazonaws.com"}
    assert s["Condition"] == {"StringEquals": {"kms:EncryptionContext:aws:logs:arn": [
        f"arn:aws-us-gov:logs:us-gov-west-1:{ACCOUNT}:log-group:/g/one",
        f"arn:aws-us-gov:logs:us-gov-west-1:{ACCOUNT}:log-group:/g/two",
    ]}}


def test_key_policy_administration_and_publishers_are_this_accounts():
    p = key_policy(["/g"])
    assert p["AccountAdministersKeyThroughIam"]["Principal"] == {"AWS": f"arn:aws-us-gov:iam::{ACCOUNT}:root"}
    assert p["AlarmsPublishToEncryptedTopic"]["Principal"] == {"Service": "cw.example"}
    assert p["AlarmsPublishToEncryptedTopic"]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    role = (f"arn:aws-us-gov:iam::{ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/"
            "AWSServiceRoleForAutoScaling")
    for sid in ("AutoScalingUsesKeyForEncryptedVolumes", "AutoScalingCreatesGrantsForAwsResources"):
        assert p[sid]["Condition"]["StringEquals"] == {"aws:PrincipalArn": role, "aws:PrincipalAccount": ACCOUNT}
    assert p["AutoScalingCreatesGrantsForAwsResources"]["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}


def test_instance_ssm_policy_scopes_to_the_given_path():
    s = instance_policies(ssm_prefix="/team/prod")["mlflow_ssm_policy"]["ReadOwnParameters"]
    param = f"arn:aws-us-gov:ssm:us-gov-west-1:{ACCOUNT}:parameter/team/prod"
    assert s["Resource"] == [param, f"{param}/*"]
    assert s["Action"] == ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"]


def test_instance_s3_policy_is_the_one_bucket_with_read_only_bundles():
    s3 = instance_policies(artifact_bucket_name="other-bucket")["mlflow_s3_policy"]
    assert s3["ListArtifactsBucket"]["Resource"] == "arn:aws-us-gov:s3:::other-bucket"
    assert s3["ReadWriteArtifacts"]["Resource"] == "arn:aws-us-gov:s3:::other-bucket/*"
    deny = s3["BootstrapBundlesReadOnly"]
    assert deny["Effect"] == "Deny" and deny["Resource"].startswith("arn:aws-us-gov:s3:::other-bucket/")
    assert deny["Resource"] != "arn:aws-us-gov:s3:::other-bucket/*"  # a prefix, not the whole bucket


def test_instance_cloudwatch_policy_is_the_given_log_groups_and_namespace():
    cw = instance_policies(log_group_names=["/x"], metrics_namespace="NS/1")["mlflow_cloudwatch_policy"]
    g = f"arn:aws-us-gov:logs:us-gov-west-1:{ACCOUNT}:log-group:/x"
    assert cw["WriteOwnLogGroups"]["Resource"] == [g, f"{g}:*"]
    assert cw["PutOwnMetrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "NS/1"}}


def test_instance_kms_policy_is_the_key_through_ssm_and_s3_only():
    k = instance_policies(kms_key_arn="arn:the-key")["mlflow_kms_policy"]["UseDeploymentKeyThroughSsmAndS3"]
    assert k["Resource"] == "arn:the-key"
    assert k["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert k["Condition"] == {"StringEquals": {"kms:ViaService": [
        "ssm.us-gov-west-1.amazonaws.com", "s3.us-gov-west-1.amazonaws.com"]}}


def test_exactly_four_instance_policies():
    assert sorted(instance_policies()) == [
        "mlflow_cloudwatch_policy", "mlflow_kms_policy", "mlflow_s3_policy", "mlflow_ssm_policy"]


def test_session_manager_policy_registers_only_this_accounts_instances():
    s = statements(session_manager_policy_document(partition="aws", region="eu-west-1", account_id=ACCOUNT))
    assert s["RegisterThisAccountsInstances"]["Resource"] == f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/*"
    assert s["RegisterThisAccountsInstances"]["Action"] == "ssm:UpdateInstanceInformation"
    assert s["SessionChannels"]["Action"] == list(SESSION_MANAGER_ACTIONS[1:])
    assert all(a.startswith("ssmmessages:") for a in s["SessionChannels"]["Action"])
