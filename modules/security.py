"""Security (guide: Security Module Resources).

Security groups and their rules, the KMS key, the instance role with its four
scoped policies, and the instance profile.
"""
from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_policy import IamPolicy
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from .base import assume_role_policy, element
from .base import policy_document as _policy


@dataclass(frozen=True)
class SecurityProps:
    prefix: str
    region: str
    account_id: str
    partition: str
    vpc_id: str
    vpc_cidr: str
    db_port: int
    alb_allowed_cidrs: list[str]
    """CIDRs that may reach the ALB on 80 and 443."""
    ssh_allowed_cidrs: list[str]
    """CIDRs that may SSH to the instances; empty = no SSH rule at all."""
    artifact_bucket_name: str
    """Exact S3 bucket the instances may read and write."""
    ssm_prefix: str
    """Parameter Store path the instances may read (``/name/env``)."""
    log_group_names: dict[str, str]
    """Log groups the instances may write to."""
    metrics_namespace: str
    """Only CloudWatch namespace the instances may put metrics into."""
    flow_log_group_name: str = "/mlflow/dev/vpc-flow-logs"
    """Log group of the VPC flow logs (encrypted with the deployment key)."""
    log_retention_days: int = 30
    """Retention of the VPC flow log group."""


class Security(Construct):
    """Who may talk to whom, and who may do what."""

    def __init__(self, scope: Construct, id: str, props: SecurityProps):
        super().__init__(scope, id)
        p = props
        arn = f"arn:{p.partition}"
        account_root = f"{arn}:iam::{p.account_id}:root"

        # --- security groups ---------------------------------------------
        def group(name: str, description: str) -> SecurityGroup:
            return SecurityGroup(
                self, f"aws_security_group.{name}",
                name=f"{p.prefix}-{name.replace('_', '-')}",
                description=description,
                vpc_id=p.vpc_id,
                tags={"Name": f"{p.prefix}-{name.replace('_', '-')}"},
            )

        self.alb_sg = group("alb", "MLflow load balancer: HTTP/HTTPS from the allowed CIDRs")
        self.app_sg = group("mlflow_app", "MLflow instances: nginx and MLflow from the load balancer only")
        self.db_sg = group("database", "MLflow database: engine port from the MLflow instances only")
        self.cache_sg = group("elasticache", "MLflow Redis: 6379 from the MLflow instances only")

        def ingress(name: str, sg: SecurityGroup, port: int, description: str, *, source_sg=None, cidrs=None):
            kw: dict = {}
            if source_sg is not None:
                kw["referenced_security_group_id"] = source_sg.id
            else:
                kw["count"] = len(cidrs)
                kw["cidr_ipv4"] = element(cidrs)
            VpcSecurityGroupIngressRule(
                self, f"aws_vpc_security_group_ingress_rule.{name}", security_group_id=sg.id, description=description,
                ip_protocol="tcp", from_port=port, to_port=port, **kw,
            )

        def egress(name: str, sg: SecurityGroup, port: int, description: str, *, dest_sg=None, cidr=None):
            kw = {"referenced_security_group_id": dest_sg.id} if dest_sg is not None else {"cidr_ipv4": cidr}
            VpcSecurityGroupEgressRule(
                self, f"aws_vpc_security_group_egress_rule.{name}", security_group_id=sg.id, description=description,
                ip_protocol="tcp", from_port=port, to_port=port, **kw,
            )

        ingress("alb_http", self.alb_sg, 80, "HTTP from allowed CIDRs", cidrs=p.alb_allowed_cidrs)
        ingress("alb_https", self.alb_sg, 443, "HTTPS from allowed CIDRs", cidrs=p.alb_allowed_cidrs)
        egress("alb_to_app_http", self.alb_sg, 80, "To nginx on the MLflow instances", dest_sg=self.app_sg)

        ingress("app_http_from_alb", self.app_sg, 80, "nginx from the load balancer", source_sg=self.alb_sg)
        ingress("app_mlflow_from_alb", self.app_sg, 5000, "MLflow port from the load balancer", source_sg=self.alb_sg)
        if p.ssh_allowed_cidrs:
            ingress("app_ssh", self.app_sg, 22, "SSH from allowed CIDRs", cidrs=p.ssh_allowed_cidrs)
        egress("app_https", self.app_sg, 443, "HTTPS to AWS APIs and package repositories", cidr="0.0.0.0/0")
        egress("app_to_database", self.app_sg, p.db_port, "To the database", dest_sg=self.db_sg)
        egress("app_to_redis", self.app_sg, 6379, "To Redis", dest_sg=self.cache_sg)

        ingress("database_from_app", self.db_sg, p.db_port, "Database port from the MLflow instances", source_sg=self.app_sg)
        ingress("elasticache_from_app", self.cache_sg, 6379, "Redis from the MLflow instances", source_sg=self.app_sg)

        # --- KMS ------------------------------------------------------------
        asg_role = f"{arn}:iam::{p.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
        log_group_arn_pattern = f"{arn}:logs:{p.region}:{p.account_id}:log-group:*"
        key_policy = _policy(
            {
                "Sid": "AccountAdministersKeyThroughIam",
                "Effect": "Allow",
                "Principal": {"AWS": account_root},
                "Action": "kms:*",
                "Resource": "*",  # in a key policy "*" means this key
            },
            {
                "Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{p.region}.amazonaws.com"},
                "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                "Resource": "*",
                "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_group_arn_pattern}},
            },
            {
                "Sid": "AlarmsAndSnsPublishToEncryptedTopic",
                "Effect": "Allow",
                "Principal": {"Service": ["cloudwatch.amazonaws.com", "sns.amazonaws.com"]},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": p.account_id}},
            },
            # The Auto Scaling service-linked role may not exist yet when the key
            # is created, and KMS rejects a policy naming a missing role; so it is
            # matched by aws:PrincipalArn, which needs no existing principal.
            {
                "Sid": "AutoScalingUsesKeyForEncryptedVolumes",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalArn": asg_role, "aws:PrincipalAccount": p.account_id}},
            },
            {
                "Sid": "AutoScalingCreatesGrantsForAwsResources",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:PrincipalArn": asg_role, "aws:PrincipalAccount": p.account_id},
                    "Bool": {"kms:GrantIsForAWSResource": "true"},
                },
            },
        )
        self.kms_key = KmsKey(
            self, "aws_kms_key.mlflow",
            description=f"{p.prefix}: S3 artifacts, EBS, RDS, Redis, SSM, CloudWatch Logs, SNS",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=key_policy,
            tags={"Name": f"{p.prefix}-key"},
        )
        KmsAlias(self, "aws_kms_alias.mlflow", name=f"alias/{p.prefix}", target_key_id=self.kms_key.key_id)

        # --- VPC flow logs: every accepted and rejected flow, to an encrypted log group ---
        flow_group = CloudwatchLogGroup(
            self, "aws_cloudwatch_log_group.vpc_flow_logs",
            name=p.flow_log_group_name,
            retention_in_days=p.log_retention_days,
            kms_key_id=self.kms_key.arn,
        )
        flow_role = IamRole(
            self, "aws_iam_role.vpc_flow_logs",
            name=f"{p.prefix}-vpc-flow-logs",
            description="VPC flow logs delivery to CloudWatch Logs",
            assume_role_policy=assume_role_policy("vpc-flow-logs.amazonaws.com", p.account_id),
        )
        IamRolePolicy(
            self, "aws_iam_role_policy.vpc_flow_logs",
            name="deliver-to-own-log-group",
            role=flow_role.id,
            policy=_policy({
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [flow_group.arn, f"{flow_group.arn}:*"],
            }),
        )
        FlowLog(
            self, "aws_flow_log.main",
            vpc_id=p.vpc_id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=flow_group.arn,
            iam_role_arn=flow_role.arn,
            max_aggregation_interval=60,
            tags={"Name": f"{p.prefix}-vpc-flow-logs"},
        )

        # --- IAM ------------------------------------------------------------
        self.role = IamRole(
            self, "aws_iam_role.mlflow_instance_role",
            name=f"{p.prefix}-instance",
            description="MLflow EC2 instances",
            assume_role_policy=assume_role_policy("ec2.amazonaws.com"),
            tags={"Name": f"{p.prefix}-instance"},
        )
        bucket_arn = f"{arn}:s3:::{p.artifact_bucket_name}"
        log_arns = [f"{arn}:logs:{p.region}:{p.account_id}:log-group:{n}" for n in p.log_group_names.values()]
        param_arn = f"{arn}:ssm:{p.region}:{p.account_id}:parameter{p.ssm_prefix}"

        policies = {
            "mlflow_s3_policy": ("Artifacts bucket: list, read, write, delete", _policy(
                {"Sid": "ListArtifactsBucket", "Effect": "Allow",
                 "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
                 "Resource": bucket_arn},
                {"Sid": "ReadWriteArtifacts", "Effect": "Allow",
                 "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                            "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                 "Resource": f"{bucket_arn}/*"},
            )),
            "mlflow_cloudwatch_policy": ("Write the MLflow log groups and metrics", _policy(
                {"Sid": "WriteOwnLogGroups", "Effect": "Allow",
                 "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                 "Resource": [a for g in log_arns for a in (g, f"{g}:*")]},
                # PutMetricData has no resource type; the namespace condition scopes it.
                {"Sid": "PutOwnMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData",
                 "Resource": "*",
                 "Condition": {"StringEquals": {"cloudwatch:namespace": p.metrics_namespace}}},
            )),
            "mlflow_ssm_policy": ("Read this deployment's parameters", _policy(
                {"Sid": "ReadOwnParameters", "Effect": "Allow",
                 "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                 "Resource": [param_arn, f"{param_arn}/*"]},
            )),
            "mlflow_kms_policy": ("Use the deployment key (SSM SecureString, S3 SSE-KMS)", _policy(
                {"Sid": "UseDeploymentKey", "Effect": "Allow",
                 "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                 "Resource": self.kms_key.arn},
            )),
        }
        self.policy_arns: dict[str, str] = {}
        for name, (description, document) in policies.items():
            policy = IamPolicy(
                self, f"aws_iam_policy.{name}",
                name=f"{p.prefix}-{name.removeprefix('mlflow_').replace('_', '-')}",
                description=description,
                policy=document,
            )
            IamRolePolicyAttachment(self, f"aws_iam_role_policy_attachment.{name}_attachment", role=self.role.name, policy_arn=policy.arn)
            self.policy_arns[name] = policy.arn
        # Session Manager shell access instead of open SSH.
        IamRolePolicyAttachment(
            self, "aws_iam_role_policy_attachment.mlflow_ssm_managed_policy",
            role=self.role.name,
            policy_arn=f"{arn}:iam::aws:policy/AmazonSSMManagedInstanceCore",
        )
        profile = IamInstanceProfile(
            self, "aws_iam_instance_profile.mlflow_instance_profile", name=f"{p.prefix}-instance", role=self.role.name,
        )

        # Typed outputs.
        self.alb_security_group_id: str = self.alb_sg.id
        self.app_security_group_id: str = self.app_sg.id
        self.database_security_group_id: str = self.db_sg.id
        self.cache_security_group_id: str = self.cache_sg.id
        self.kms_key_arn: str = self.kms_key.arn
        self.kms_key_id: str = self.kms_key.key_id
        self.instance_role_arn: str = self.role.arn
        self.instance_role_name: str = self.role.name
        self.instance_profile_name: str = profile.name
        self.instance_profile_arn: str = profile.arn
