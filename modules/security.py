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
from constructs import Construct

from .base import KmsKeyRef, assume_role_policy, guarded, service_principal
from .base import policy_document as _policy
from .mlflow_instance import BUNDLE_PREFIX
from .naming import Names
from .sg_rules import Rule, add_rules


@dataclass(frozen=True)
class SecurityProps:
    prefix: str
    """``name-environment``: prefix of the groups' Name tags, the flow-log role and the key description."""
    region: str
    """AWS region of the deployment (log group, parameter and instance ARNs; key policy service names)."""
    account_id: str
    """Account of the deployment (ARNs, key administration, confused-deputy conditions)."""
    partition: str
    """ARN partition (``aws``, ``aws-us-gov``, ...)."""
    vpc_id: str
    """VPC of the security groups and the flow logs."""
    db_port: int
    """Port of the database (3306 MySQL, 5432 PostgreSQL): instances to database rules."""
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
    names: Names
    """Names, name prefixes and descriptions of the groups, role, profile, policies and key alias."""
    private_cidrs: list[str]
    """Private subnets (the instances): inline-style egress from the load balancer."""
    database_cidrs: list[str]
    """Database subnets (RDS, Redis): inline-style egress from the instances."""
    alb_internal: bool = True
    """An internal load balancer is also reached through Session Manager port forwarding via the
    instances: they may then connect to it on 80/443 (the load balancer is in the private subnets).
    Default True."""
    flow_log_group_name: str = "/mlflow/dev/vpc-flow-logs"
    """Log group of the VPC flow logs (encrypted with the deployment key); default ``/mlflow/dev/vpc-flow-logs``."""
    log_retention_days: int = 30
    """Retention of the VPC flow log group; default 30 days."""
    dns_suffix: str = "amazonaws.com"
    """DNS suffix of the partition (regional service names in key policy conditions);
    default ``amazonaws.com``."""
    protect_key: bool = False
    """``prevent_destroy`` on the KMS key (everything stored is encrypted with it); default False."""

# What the SSM agent needs for Session Manager shells and port forwarding, and nothing else:
# AWS's "custom IAM instance profile for Session Manager" (Systems Manager user guide,
# getting-started-create-iam-instance-profile.html); ec2messages is for Run Command, not sessions.
SESSION_MANAGER_ACTIONS = (
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
)


def key_policy_document(*, partition: str, region: str, account_id: str, dns_suffix: str,
                        log_group_names: list[str], cloudwatch_principal: str) -> str:
    """The deployment key's policy (JSON text).

    ``log_group_names`` are every log group of the stack encrypted with the key, by exact name:
    CloudWatch Logs may use the key for those and no others. ``cloudwatch_principal`` is the
    CloudWatch service principal of the partition (alarms publishing to the encrypted topic).
    """
    arn = f"arn:{partition}"
    # A service-linked role's path is autoscaling.amazonaws.com in every partition.
    asg_role = f"{arn}:iam::{account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    # The encryption context CloudWatch Logs sends is the log group's exact ARN.
    log_group_arns = [f"{arn}:logs:{region}:{account_id}:log-group:{n}" for n in log_group_names]
    return _policy(
        {
            "Sid": "AccountAdministersKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"{arn}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",  # in a key policy "*" means this key
        },
        {
            "Sid": "CloudWatchLogsEncryptsThisDeploymentsLogGroups",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.{dns_suffix}"},
            # No kms:Describe*: DescribeKey carries no encryption context, so under this condition
            # it never matched. StringEquals: the context value is a string, exactly the ARN.
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:EncryptionContext:aws:logs:arn": log_group_arns}},
        },
        # Publishers to an SSE-KMS topic need the key, not SNS itself (SNS developer guide,
        # sns-key-management.html, "compatibility with AWS services"): alarms publish as
        # cloudwatch.amazonaws.com, Auto Scaling notifications as its service-linked role (below).
        {
            "Sid": "AlarmsPublishToEncryptedTopic",
            "Effect": "Allow",
            "Principal": {"Service": cloudwatch_principal},
            "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
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
            "Condition": {"StringEquals": {"aws:PrincipalArn": asg_role, "aws:PrincipalAccount": account_id}},
        },
        {
            "Sid": "AutoScalingCreatesGrantsForAwsResources",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:PrincipalArn": asg_role, "aws:PrincipalAccount": account_id},
                "Bool": {"kms:GrantIsForAWSResource": "true"},
            },
        },
    )


def instance_policy_documents(*, partition: str, region: str, account_id: str, dns_suffix: str,
                              artifact_bucket_name: str, log_group_names: list[str], ssm_prefix: str,
                              metrics_namespace: str, kms_key_arn: str) -> dict[str, str]:
    """The instance role's four scoped policies (JSON text), by policy key (``mlflow_s3_policy``, ...).

    S3: the one artifact bucket, bootstrap bundles read-only; CloudWatch: the given log groups and
    the one metrics namespace; SSM: parameters under ``ssm_prefix``; KMS: the key, through SSM and S3 only.
    """
    arn = f"arn:{partition}"
    bucket_arn = f"{arn}:s3:::{artifact_bucket_name}"
    log_arns = [f"{arn}:logs:{region}:{account_id}:log-group:{n}" for n in log_group_names]
    param_arn = f"{arn}:ssm:{region}:{account_id}:parameter{ssm_prefix}"
    return {
        "mlflow_s3_policy": _policy(
            {"Sid": "ListArtifactsBucket", "Effect": "Allow",
             "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
             "Resource": bucket_arn},
            {"Sid": "ReadWriteArtifacts", "Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                        "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
             "Resource": f"{bucket_arn}/*"},
            # Bootstrap bundles (modules/mlflow_instance) are Terraform's: the instances only read them.
            {"Sid": "BootstrapBundlesReadOnly", "Effect": "Deny",
             "Action": ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
             "Resource": f"{bucket_arn}/{BUNDLE_PREFIX}*"},
        ),
        "mlflow_cloudwatch_policy": _policy(
            {"Sid": "WriteOwnLogGroups", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
             "Resource": [a for g in log_arns for a in (g, f"{g}:*")]},
            # PutMetricData has no resource type; the namespace condition scopes it.
            {"Sid": "PutOwnMetrics", "Effect": "Allow", "Action": "cloudwatch:PutMetricData",
             "Resource": "*",
             "Condition": {"StringEquals": {"cloudwatch:namespace": metrics_namespace}}},
        ),
        "mlflow_ssm_policy": _policy(
            {"Sid": "ReadOwnParameters", "Effect": "Allow",
             "Action": ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
             "Resource": [param_arn, f"{param_arn}/*"]},
        ),
        # The instances use the key only through SSM (SecureString reads) and S3 (SSE-KMS
        # artifacts); EBS goes through Auto Scaling's role, CloudWatch Logs encrypts server-side.
        "mlflow_kms_policy": _policy(
            {"Sid": "UseDeploymentKeyThroughSsmAndS3", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
             "Resource": kms_key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": [
                 f"ssm.{region}.{dns_suffix}", f"s3.{region}.{dns_suffix}"]}}},
        ),
    }


def session_manager_policy_document(*, partition: str, region: str, account_id: str) -> str:
    """Session Manager for this account's instances: the SSM agent's registration and session channels."""
    return _policy(
        {"Sid": "RegisterThisAccountsInstances", "Effect": "Allow",
         "Action": SESSION_MANAGER_ACTIONS[0],
         "Resource": f"arn:{partition}:ec2:{region}:{account_id}:instance/*"},
        # The ssmmessages actions have no resource type: "*" is the only resource they take.
        {"Sid": "SessionChannels", "Effect": "Allow", "Action": list(SESSION_MANAGER_ACTIONS[1:]),
         "Resource": "*"},
    )


class Security(Construct):
    """Who may talk to whom, and who may do what."""

    def __init__(self, scope: Construct, id: str, props: SecurityProps):
        super().__init__(scope, id)
        self._security_groups(props)
        self._key(props)
        self._flow_logs(props)
        self._instance_role(props)

        # Typed outputs.
        self.alb_security_group_id: str = self.alb_sg.id
        self.app_security_group_id: str = self.app_sg.id
        self.database_security_group_id: str = self.db_sg.id
        self.cache_security_group_id: str = self.cache_sg.id
        self.kms_key = KmsKeyRef(arn=self._key_resource.arn, key_id=self._key_resource.key_id)
        self.instance_role_arn: str = self.role.arn
        self.instance_role_name: str = self.role.name
        self.instance_profile_name: str = self._profile.name
        self.instance_profile_arn: str = self._profile.arn

    def _security_groups(self, p: SecurityProps) -> None:
        """The four groups (load balancer, instances, database, Redis) and their rules."""
        def group(key: str) -> SecurityGroup:
            return SecurityGroup(
                self, f"aws_security_group.{key}",
                **p.names.security_groups[key].kwargs(),
                vpc_id=p.vpc_id,
                tags={"Name": f"{p.prefix}-{key.replace('_', '-')}"},
            )

        self.alb_sg = group("alb")
        self.app_sg = group("mlflow_app")
        self.db_sg = group("database")
        self.cache_sg = group("elasticache")

        alb_rules = [
            Rule("alb_http", "ingress", 80, "HTTP from allowed CIDRs", cidrs=p.alb_allowed_cidrs),
            Rule("alb_https", "ingress", 443, "HTTPS from allowed CIDRs", cidrs=p.alb_allowed_cidrs),
            *([Rule(f"alb_{proto}_from_instances", "ingress", port, f"{proto.upper()} from the instances "
                    "(Session Manager port forwarding)", cidrs=p.private_cidrs)
               for proto, port in (("http", 80), ("https", 443))] if p.alb_internal else []),
            Rule("alb_to_app_http", "egress", 80, "To nginx on the MLflow instances",
                 peer=self.app_sg, peer_cidrs=p.private_cidrs),
        ]
        app_rules = [
            Rule("app_http_from_alb", "ingress", 80, "nginx from the load balancer", peer=self.alb_sg),
            Rule("app_mlflow_from_alb", "ingress", 5000, "MLflow port from the load balancer", peer=self.alb_sg),
            *([Rule("app_ssh", "ingress", 22, "SSH from allowed CIDRs", cidrs=p.ssh_allowed_cidrs)]
              if p.ssh_allowed_cidrs else []),
            Rule("app_https", "egress", 443, "HTTPS to AWS APIs and package repositories", cidr="0.0.0.0/0"),
            *([Rule("app_to_alb_http", "egress", 80, "To the internal load balancer (port forwarding)",
                    peer=self.alb_sg, peer_cidrs=p.private_cidrs)] if p.alb_internal else []),
            Rule("app_to_database", "egress", p.db_port, "To the database", peer=self.db_sg,
                 peer_cidrs=p.database_cidrs),
            Rule("app_to_redis", "egress", 6379, "To Redis", peer=self.cache_sg, peer_cidrs=p.database_cidrs),
        ]
        db_rules = [Rule("database_from_app", "ingress", p.db_port, "Database port from the MLflow instances",
                         peer=self.app_sg)]
        cache_rules = [Rule("elasticache_from_app", "ingress", 6379, "Redis from the MLflow instances",
                            peer=self.app_sg)]
        inline = p.names.inline_security_group_rules
        for sg, rules in ((self.alb_sg, alb_rules), (self.app_sg, app_rules), (self.db_sg, db_rules),
                          (self.cache_sg, cache_rules)):
            add_rules(self, sg, rules, inline=inline)

    def _key(self, p: SecurityProps) -> None:
        """The deployment key and its alias."""
        # Every log group of the stack encrypted with this key: the instances' three, the flow
        # logs, the Redis slow log.
        encrypted_log_groups = [*p.log_group_names.values(), p.flow_log_group_name, p.names.redis_slow_log_group]
        self._key_resource = KmsKey(
            self, "aws_kms_key.mlflow",
            description=f"{p.prefix}: S3 artifacts, EBS, RDS, Redis, SSM, CloudWatch Logs, SNS",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=key_policy_document(
                partition=p.partition, region=p.region, account_id=p.account_id, dns_suffix=p.dns_suffix,
                log_group_names=encrypted_log_groups,
                cloudwatch_principal=service_principal(self, "cloudwatch"),
            ),
            tags={"Name": f"{p.prefix}-key"},
            lifecycle=guarded(p.protect_key),
        )
        KmsAlias(self, "aws_kms_alias.mlflow", name=p.names.kms_alias, target_key_id=self._key_resource.key_id)

    def _flow_logs(self, p: SecurityProps) -> None:
        """VPC flow logs: every accepted and rejected flow, to an encrypted log group."""
        flow_group = CloudwatchLogGroup(
            self, "aws_cloudwatch_log_group.vpc_flow_logs",
            name=p.flow_log_group_name,
            retention_in_days=p.log_retention_days,
            kms_key_id=self._key_resource.arn,
        )
        flow_role = IamRole(
            self, "aws_iam_role.vpc_flow_logs",
            name=f"{p.prefix}-vpc-flow-logs",
            description="VPC flow logs delivery to CloudWatch Logs",
            assume_role_policy=assume_role_policy(service_principal(self, "vpc-flow-logs"), p.account_id),
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

    def _instance_role(self, p: SecurityProps) -> None:
        """The instances' role, its four scoped policies, Session Manager, and the instance profile."""
        self.role = IamRole(
            self, "aws_iam_role.mlflow_instance_role",
            **p.names.instance_role.kwargs(),
            assume_role_policy=assume_role_policy(service_principal(self, "ec2")),
            tags={"Name": f"{p.prefix}-instance"},
        )
        policies = instance_policy_documents(
            partition=p.partition, region=p.region, account_id=p.account_id, dns_suffix=p.dns_suffix,
            artifact_bucket_name=p.artifact_bucket_name, log_group_names=list(p.log_group_names.values()),
            ssm_prefix=p.ssm_prefix, metrics_namespace=p.metrics_namespace, kms_key_arn=self._key_resource.arn,
        )
        for name, document in policies.items():
            policy = IamPolicy(self, f"aws_iam_policy.{name}", **p.names.instance_policies[name].kwargs(), policy=document)
            IamRolePolicyAttachment(self, f"aws_iam_role_policy_attachment.{name}_attachment", role=self.role.name, policy_arn=policy.arn)
        # Session Manager shells instead of open SSH. Our own policy, not AmazonSSMManagedInstanceCore:
        # that one reads every parameter in the account (ssm:GetParameter* on *). The attachment keeps
        # its address (adopted deployments' managed-policy attachment is moved there).
        session_policy = IamPolicy(
            self, "aws_iam_policy.mlflow_session_manager_policy",
            **(dict(name_prefix=f"{p.prefix}-mlflow-session-manager") if p.names.profile == "hcl"
               else dict(name=f"{p.prefix}-session-manager")),
            description="Session Manager: the SSM agent's sessions only",
            policy=session_manager_policy_document(partition=p.partition, region=p.region, account_id=p.account_id),
        )
        IamRolePolicyAttachment(
            self, "aws_iam_role_policy_attachment.mlflow_ssm_managed_policy",
            role=self.role.name,
            policy_arn=session_policy.arn,
            lifecycle={"create_before_destroy": True},  # sessions never lack a policy while it moves
        )
        self._profile = IamInstanceProfile(
            self, "aws_iam_instance_profile.mlflow_instance_profile", **p.names.instance_profile.kwargs(),
            role=self.role.name,
        )
