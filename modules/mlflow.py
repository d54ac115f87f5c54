"""MLflow (guide: MLflow Module Resources).

Launch template and Auto Scaling group running MLflow behind nginx, the
Application Load Balancer with its target group and listeners, the artifact
and ALB-log buckets, and the CloudWatch log groups.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Optional

from cdktf import Fn, TerraformResourceLifecycle, TerraformStack
from cdktf_cdktf_provider_aws.autoscaling_group import (
    AutoscalingGroup,
    AutoscalingGroupInstanceRefresh,
    AutoscalingGroupInstanceRefreshPreferences,
    AutoscalingGroupLaunchTemplate,
    AutoscalingGroupTag,
)
from cdktf_cdktf_provider_aws.autoscaling_policy import (
    AutoscalingPolicy,
    AutoscalingPolicyTargetTrackingConfiguration,
    AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification,
)
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateIamInstanceProfile,
    LaunchTemplateMetadataOptions,
    LaunchTemplateMonitoring,
    LaunchTemplateTagSpecifications,
)
from cdktf_cdktf_provider_aws.lb import Lb, LbAccessLogs
from cdktf_cdktf_provider_aws.lb_listener import LbListener
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup, LbTargetGroupHealthCheck
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_logging import S3BucketLoggingA
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleExpiration,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import (
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from cdktf_cdktf_provider_aws.s3_object import S3Object
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from cdktf_cdktf_provider_aws.wafv2_web_acl import (
    Wafv2WebAcl,
    Wafv2WebAclDefaultAction,
    Wafv2WebAclVisibilityConfig,
)
from cdktf_cdktf_provider_aws.wafv2_web_acl_association import Wafv2WebAclAssociation
from constructs import Construct

from .base import policy_document as _policy
from .base import KmsKeyRef, guarded, service_principal
from .db_budget import REFRESH_MIN_HEALTHY_PERCENT
from .mlflow_instance import BootstrapInputs, build_bundle, render_user_data
from .edge import Edge, EdgeProps
from .naming import Names

HTTP_PORT = 80
MLFLOW_PORT = 5000
HEALTH_PATH = "/health"
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"

# Regions opened before August 2022 deliver ALB logs as a regional ELB account;
# newer regions use the log-delivery service principal.
ELB_LOG_ACCOUNTS = {
    "us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
    "us-west-2": "797873946194", "af-south-1": "098369216593", "ap-east-1": "754344448648",
    "ap-southeast-3": "589379963580", "ap-south-1": "718504428378", "ap-northeast-3": "383597477331",
    "ap-northeast-2": "600734575887", "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
    "ap-northeast-1": "582318560864", "ca-central-1": "985666609251", "eu-central-1": "054676820928",
    "eu-west-1": "156460612806", "eu-west-2": "652711504416", "eu-south-1": "635631232127",
    "eu-west-3": "009996457667", "eu-north-1": "897822967062", "me-south-1": "076674570225",
    "sa-east-1": "507241528517", "us-gov-west-1": "048591011584", "us-gov-east-1": "190560391635",
}


def ami_parameter(instance_type: str) -> str:
    """Public SSM parameter of the latest Amazon Linux 2023 AMI for the instance's CPU."""
    graviton = re.fullmatch(r"[a-z]+[0-9]+g[a-z]*", instance_type.split(".")[0])  # t4g, m7g, c7gn
    return AMI_PARAMETER.format(arch="arm64" if graviton else "x86_64")


@dataclass(frozen=True)
class ScalingProps:
    """Demand scaling of the group (docs/observability.md)."""

    requests_per_target: int
    """Target tracking: load balancer requests per instance per minute."""
    cpu_percent: int
    """Target tracking: average CPU of the group."""
    instance_warmup_seconds: int
    """Before a new instance's metrics count for scaling."""
    health_check_grace_seconds: int
    """Before failed health checks replace a new instance."""
    deregistration_delay_seconds: int
    """Requests in flight (artifact uploads) may finish this long on an instance leaving."""


@dataclass(frozen=True)
class MlflowProps:
    """What the MLflow service needs; fields without a default are required."""

    prefix: str
    """``name-environment``: prefix of the load balancer, target group, WAF, policies and Name tags."""
    names: Names
    """Auto Scaling group and launch template names, SSM parameter names, artifacts prefix (naming profile)."""
    region: str
    """AWS region of the deployment (ALB log delivery account, user data, bootstrap bundle)."""
    account_id: str
    """Account of the deployment (bucket policy resources and conditions)."""
    partition: str
    """ARN partition (``aws``, ``aws-us-gov``, ...)."""
    vpc_id: str
    """VPC of the target group."""
    public_subnet_ids: list[str]
    """Subnets of an internet-facing load balancer."""
    private_subnet_ids: list[str]
    """Subnets of the instances, and of an internal load balancer."""
    alb_security_group_id: str
    """Security group of the load balancer (``Security.alb_security_group_id``)."""
    app_security_group_id: str
    """Security group of the instances (``Security.app_security_group_id``)."""
    instance_profile_arn: str
    """Instance profile of the launch template (``Security.instance_profile_arn``)."""
    kms_key: KmsKeyRef
    """The deployment key (``Security.kms_key``): artifact bucket, bootstrap bundle, EBS volumes,
    log groups (by ARN), SSM SecureStrings (by key id)."""
    key_name: str
    """EC2 key pair of the instances (``Bootstrap.key_name``; SSH only where ssh_allowed_cidrs allow it)."""
    artifact_bucket_name: str
    """Exact name of the artifact bucket."""
    alb_logs_bucket_name: str
    """Exact name of the bucket of ALB and S3 access logs."""
    ssm_prefix: str
    """Parameter Store path the instances read their configuration from (``/name/env``)."""
    log_group_names: dict[str, str]
    """Log group names of the instances by key: ``mlflow``, ``nginx``, ``system``."""
    log_retention_days: int
    """Retention of the log groups; access logs are kept this long, at least 30 days."""
    metrics_namespace: str
    """CloudWatch namespace the instances put their metrics into."""
    instance_type: str
    """EC2 instance type; a Graviton type (``t4g``, ``m7g``, ...) selects the arm64 AMI."""
    min_size: int
    """Least number of instances of the Auto Scaling group."""
    desired_capacity: int
    """Initial number of instances; then target tracking owns it (Terraform ignores later changes)."""
    max_size: int
    """Greatest number of instances of the Auto Scaling group."""
    mlflow_version: str
    """MLflow version the instances install (a new one rolls the group)."""
    mlflow_workers: int
    """API workers (gunicorn) per instance asked for (resolved: at least 1; the budget may allow fewer)."""
    db_engine: str
    """``mysql`` or ``postgres``: the database driver the instances install."""
    certificate_arn: Optional[str]
    """A certificate you bring for the HTTPS listener; None = none (an ACM certificate is requested when
    domain_name and route53_zone_id are given, else HTTP only)."""
    deletion_protection: bool
    """Deletion protection of the load balancer; without it destroy empties and deletes the buckets."""
    alb_internet_facing: bool = False
    """Load balancer in the public subnets, reachable from the internet (default: internal)."""
    domain_name: Optional[str] = None
    """DNS name of MLflow; with route53_zone_id a validated ACM certificate and an alias record
    (default: none, the load balancer's DNS name)."""
    route53_zone_id: Optional[str] = None
    """Hosted zone of domain_name for the certificate validation and alias records (default: none)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags of the group, propagated to the instances it launches (provider default_tags reach neither).
    A change updates the group only: no launch template version, no instance refresh (default none)."""
    launch_tags: dict[str, str] = field(default_factory=dict)
    """Tags fixed for the life of the environment (Project, Environment, ManagedBy), written into the
    launch template for instances and volumes: changing them would roll the fleet (default none)."""
    ami_id: Optional[str] = None
    """AMI of the instances; default None: the latest Amazon Linux 2023 for the instance type's CPU,
    read from AWS's public SSM parameter at plan time (a new release shows in the plan and rolls)."""
    waf: bool = False
    """AWS WAF with AWS managed rules on the ALB (default off)."""
    auth: bool = True
    """MLflow basic auth (docs/auth.md): admin password and Flask secret key in SSM (default on)."""
    auth_secrets_version: int = 1
    """Bump to generate new auth secrets (admin password and Flask secret key) in SSM (default 1)."""
    db_connections: Optional[int] = None
    """Database connections each instance's servers may hold (modules/db_budget.py); None = the
    launcher's default."""
    scaling: ScalingProps = field(kw_only=True)
    """Target tracking, warmup, health-check grace and deregistration delay (required, keyword only)."""


class Mlflow(Construct):
    """The MLflow service: compute, load balancing, storage and logs."""

    def __init__(self, scope: Construct, id: str, props: MlflowProps):
        super().__init__(scope, id)
        self._artifact_bucket(props)
        self._access_log_bucket(props)
        self._log_groups(props)
        self._load_balancer(props)
        self._boot_parameters(props)
        self._bootstrap_bundle(props)
        self._launch_template(props)
        self._auto_scaling_group(props)
        self._demand_scaling(props)

        # Typed outputs.
        self.alb_dns_name: str = self.alb.dns_name
        self.alb_arn: str = self.alb.arn
        self.alb_arn_suffix: str = self.alb.arn_suffix
        self.target_group_arn: str = self.target_group.arn
        self.target_group_arn_suffix: str = self.target_group.arn_suffix
        self.asg_name: str = self.asg.name
        self.artifact_bucket: str = self._artifacts.bucket
        self.artifact_bucket_arn: str = self._artifacts.arn
        self.alb_logs_bucket: str = self._alb_logs.bucket
        self.tracking_url: str = self.edge.tracking_url

    def _artifact_bucket(self, p: MlflowProps) -> None:
        """The artifact bucket: versioned, SSE-KMS with the deployment key, TLS only."""
        self._artifacts = artifacts = self._bucket(
            "mlflow_artifacts", p.artifact_bucket_name, kms_key_arn=p.kms_key.arn,
            force_destroy=not p.deletion_protection, protect=p.deletion_protection)
        S3BucketVersioningA(
            self, "aws_s3_bucket_versioning.mlflow_artifacts",
            bucket=artifacts.id,
            versioning_configuration=S3BucketVersioningVersioningConfiguration(status="Enabled"),
        )
        S3BucketLifecycleConfiguration(
            self, "aws_s3_bucket_lifecycle_configuration.mlflow_artifacts",
            bucket=artifacts.id,
            rule=[S3BucketLifecycleConfigurationRule(
                id="expire-old-versions-and-uploads",
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                noncurrent_version_expiration=[
                    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(noncurrent_days=90)],
                abort_incomplete_multipart_upload=[
                    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(days_after_initiation=7)],
            )],
        )
        S3BucketPolicy(
            self, "aws_s3_bucket_policy.mlflow_artifacts",
            bucket=artifacts.id,
            policy=_policy(_deny_insecure_transport(artifacts.arn)),
        )

    def _access_log_bucket(self, p: MlflowProps) -> None:
        """The bucket of the load balancer's and the artifact bucket's access logs.

        ALB access logs cannot be encrypted with a customer managed key: SSE-S3."""
        arn = f"arn:{p.partition}"
        artifacts = self._artifacts
        self._alb_logs = alb_logs = self._bucket("alb_logs", p.alb_logs_bucket_name, kms_key_arn=None,
                                                 force_destroy=not p.deletion_protection)
        log_writer = (
            {"AWS": f"{arn}:iam::{ELB_LOG_ACCOUNTS[p.region]}:root"} if p.region in ELB_LOG_ACCOUNTS
            else {"Service": service_principal(self, "logdelivery.elasticloadbalancing")}
        )
        self._alb_logs_policy = logs_policy = S3BucketPolicy(
            self, "aws_s3_bucket_policy.alb_logs",
            bucket=alb_logs.id,
            policy=_policy(
                {"Sid": "AlbWritesAccessLogs", "Effect": "Allow", "Principal": log_writer,
                 "Action": "s3:PutObject",
                 "Resource": f"{alb_logs.arn}/alb/AWSLogs/{p.account_id}/*"},
                {"Sid": "S3WritesArtifactBucketAccessLogs", "Effect": "Allow",
                 "Principal": {"Service": service_principal(self, "logging.s3")},
                 "Action": "s3:PutObject",
                 "Resource": f"{alb_logs.arn}/s3-access/artifacts/*",
                 "Condition": {"StringEquals": {"aws:SourceAccount": p.account_id},
                               "ArnLike": {"aws:SourceArn": artifacts.arn}}},
                _deny_insecure_transport(alb_logs.arn),
            ),
        )
        # Who read or wrote which model or artifact: server access logs.
        S3BucketLoggingA(
            self, "aws_s3_bucket_logging.mlflow_artifacts",
            bucket=artifacts.id,
            target_bucket=alb_logs.id,
            target_prefix="s3-access/artifacts/",
            depends_on=[logs_policy],  # S3 checks the target's policy when logging is turned on
        )
        S3BucketLifecycleConfiguration(
            self, "aws_s3_bucket_lifecycle_configuration.alb_logs",
            bucket=alb_logs.id,
            rule=[S3BucketLifecycleConfigurationRule(
                id="expire-access-logs",
                status="Enabled",
                filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                expiration=[S3BucketLifecycleConfigurationRuleExpiration(days=max(p.log_retention_days, 30))],
                abort_incomplete_multipart_upload=[
                    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(days_after_initiation=7)],
            )],
        )

    def _log_groups(self, p: MlflowProps) -> None:
        """The instances' CloudWatch log groups (mlflow, nginx, system), encrypted with the deployment key."""
        self.log_group_arns: dict[str, str] = {}
        for key, name in p.log_group_names.items():
            group = CloudwatchLogGroup(
                self, f"aws_cloudwatch_log_group.{key}",
                name=name,
                retention_in_days=p.log_retention_days,
                kms_key_id=p.kms_key.arn,
            )
            self.log_group_arns[key] = group.arn

    def _load_balancer(self, p: MlflowProps) -> None:
        """The load balancer, its target group, the optional WAF, and the edge (listeners, certificate, DNS)."""
        self.alb = Lb(
            self, "aws_lb.mlflow",
            name=f"{p.prefix}-alb",
            load_balancer_type="application",
            internal=not p.alb_internet_facing,
            security_groups=[p.alb_security_group_id],
            subnets=p.public_subnet_ids if p.alb_internet_facing else p.private_subnet_ids,
            drop_invalid_header_fields=True,
            enable_deletion_protection=p.deletion_protection,
            idle_timeout=300,
            access_logs=LbAccessLogs(bucket=self._alb_logs.id, prefix="alb", enabled=True),
            tags={"Name": f"{p.prefix}-alb"},
            depends_on=[self._alb_logs_policy],  # ELB checks it may write the bucket when logging is turned on
        )
        self.target_group = LbTargetGroup(
            self, "aws_lb_target_group.mlflow",
            name=f"{p.prefix}-tg",
            port=HTTP_PORT,
            protocol="HTTP",
            target_type="instance",
            vpc_id=p.vpc_id,
            # Scale-in and instance refresh wait this long for requests in flight (uploads) to finish.
            deregistration_delay=str(p.scaling.deregistration_delay_seconds),
            # Through nginx to MLflow itself: fails when MLflow is down.
            health_check=LbTargetGroupHealthCheck(
                enabled=True, path=HEALTH_PATH, port="traffic-port", protocol="HTTP",
                matcher="200", interval=15, timeout=5, healthy_threshold=2, unhealthy_threshold=3,
            ),
            tags={"Name": f"{p.prefix}-tg"},
        )
        if p.waf:
            self._waf(p)
        self.edge = Edge(self, "edge", EdgeProps(
            prefix=p.prefix, alb=self.alb, target_group=self.target_group, certificate_arn=p.certificate_arn,
            domain_name=p.domain_name, route53_zone_id=p.route53_zone_id,
        ))

    def _boot_parameters(self, p: MlflowProps) -> None:
        """Boot-time configuration the instances read from SSM: bucket, host names, auth secrets."""
        SsmParameter(
            self, "aws_ssm_parameter.artifact_bucket",
            name=p.names.ssm["mlflow/artifact_bucket"], type="String", value=self._artifacts.bucket,
            description="MLflow artifact bucket",
        )
        SsmParameter(
            self, "aws_ssm_parameter.allowed_hosts",
            name=p.names.ssm["mlflow/allowed_hosts"], type="String",
            value=",".join(dict.fromkeys(h for h in (p.domain_name, self.alb.dns_name) if h)),
            description="Host names MLflow answers to (the load balancer's)",
        )
        self._auth_parameters: list[SsmParameter] = []
        if p.auth:
            # Generated by ephemeral resources and written through write-only
            # arguments: in neither the synthesized JSON, the plan nor the state.
            # Letters and digits only, so they need no quoting in ini files,
            # URLs or HTTP basic auth.
            stack = TerraformStack.of(self)
            for key, length, description in (
                ("admin_password", 32, "MLflow admin password (basic auth, user admin)"),
                ("flask_secret_key", 64, "MLflow Flask secret key (basic auth, every instance)"),
            ):
                secret = stack.add_ephemeral(
                    "aws_secretsmanager_random_password", f"mlflow_{key}",
                    {"password_length": length, "exclude_punctuation": True},
                )
                self._auth_parameters.append(SsmParameter(
                    self, f"aws_ssm_parameter.mlflow_{key}",
                    name=p.names.ssm[f"mlflow/{key}"],
                    description=description,
                    type="SecureString",
                    key_id=p.kms_key.key_id,
                    value_wo=f"${{{secret}.random_password}}",
                    value_wo_version=p.auth_secrets_version,
                ))

    def _bootstrap_bundle(self, p: MlflowProps) -> None:
        """The instances' bootstrap bundle (modules/mlflow_instance), an object of the artifact bucket."""
        self.bootstrap = build_bundle(BootstrapInputs(
            region=p.region,
            ssm_prefix=p.ssm_prefix,
            ssm_names=dict(p.names.ssm),
            log_group_mlflow=p.log_group_names["mlflow"],
            log_group_nginx=p.log_group_names["nginx"],
            log_group_system=p.log_group_names["system"],
            mlflow_version=p.mlflow_version,
            db_engine=p.db_engine,
            metrics_namespace=p.metrics_namespace,
            mlflow_port=MLFLOW_PORT,
            http_port=HTTP_PORT,
            workers=p.mlflow_workers,
            db_connections=p.db_connections,
            auth=p.auth,
            auth_secrets_version=p.auth_secrets_version,
            artifacts_prefix=p.names.artifacts_prefix,
            rewrite_legacy_artifact_uris=p.names.rewrite_legacy_artifact_uris,
        ))
        # The bundle the user data fetches and checks (content-addressed key, sha256 in the user data).
        self._bundle = S3Object(
            self, "aws_s3_object.bootstrap_bundle",
            bucket=self._artifacts.id, key=self.bootstrap.key,
            content_base64=base64.b64encode(self.bootstrap.data).decode(), content_type="application/gzip",
            server_side_encryption="aws:kms", kms_key_id=p.kms_key.arn,
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
            # No instance of a new bundle boots before the auth secrets it is for are written.
            depends_on=self._auth_parameters or None,
        )

    def _launch_template(self, p: MlflowProps) -> None:
        """The instances: AMI, type, profile, IMDSv2, encrypted root volume, user data fetching the bundle."""
        launch_tags = {**p.launch_tags, "Name": f"{p.prefix}-mlflow"}
        image_id = p.ami_id or DataAwsSsmParameter(
            self, "aws_ssm_parameter.ami", name=ami_parameter(p.instance_type)).insecure_value
        self.launch_template = LaunchTemplate(
            self, "aws_launch_template.mlflow",
            **p.names.launch_template.kwargs(description=False),
            description=f"MLflow {p.mlflow_version}",
            image_id=image_id,
            instance_type=p.instance_type,
            key_name=p.key_name,
            vpc_security_group_ids=[p.app_security_group_id],
            iam_instance_profile=LaunchTemplateIamInstanceProfile(arn=p.instance_profile_arn),
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            monitoring=LaunchTemplateMonitoring(enabled=True),
            block_device_mappings=[LaunchTemplateBlockDeviceMappings(
                device_name="/dev/xvda",
                ebs=LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=30, volume_type="gp3", encrypted="true", kms_key_id=p.kms_key.arn,
                    delete_on_termination="true",
                ),
            )],
            user_data=_user_data(self._artifacts.bucket, self.bootstrap.key, self.bootstrap.sha256, p.region),
            depends_on=[self._bundle],  # no instance boots before its bundle is there
            update_default_version=True,
            tag_specifications=[
                LaunchTemplateTagSpecifications(resource_type="instance", tags=launch_tags),
                LaunchTemplateTagSpecifications(resource_type="volume", tags=launch_tags),
            ],
        )

    def _auto_scaling_group(self, p: MlflowProps) -> None:
        """The group behind the target group, rolled by a new launch template version."""
        self.asg = AutoscalingGroup(
            self, "aws_autoscaling_group.mlflow",
            name=p.names.asg,
            min_size=p.min_size,
            desired_capacity=p.desired_capacity,
            max_size=p.max_size,
            vpc_zone_identifier=p.private_subnet_ids,
            target_group_arns=[self.target_group.arn],
            health_check_type="ELB",
            health_check_grace_period=p.scaling.health_check_grace_seconds,
            launch_template=AutoscalingGroupLaunchTemplate(
                id=self.launch_template.id, version=f"{self.launch_template.latest_version}",
            ),
            # A new launch template version (another MLflow version, AMI, type) rolls the group, and
            # rolls back by itself when new instances fail their health checks. Tags never make a version.
            instance_refresh=AutoscalingGroupInstanceRefresh(
                strategy="Rolling",
                preferences=AutoscalingGroupInstanceRefreshPreferences(
                    min_healthy_percentage=REFRESH_MIN_HEALTHY_PERCENT, auto_rollback=True),
            ),
            enabled_metrics=["GroupDesiredCapacity", "GroupInServiceInstances", "GroupTotalInstances"],
            tag=[AutoscalingGroupTag(key=k, value=v, propagate_at_launch=True)
                 for k, v in {**p.tags, "Name": f"{p.prefix}-mlflow"}.items()],
            # desired_capacity is the initial size; then target tracking owns it (min/max bound it).
            lifecycle={"ignore_changes": ["desired_capacity"]},
        )

    def _demand_scaling(self, p: MlflowProps) -> None:
        """Target tracking on requests per instance and on CPU: the group scales out when either is above
        its target and in when both are below. create_before_destroy: an adopted group's step policies are
        replaced by these (modules/adoption.py) with no moment without a policy."""
        listeners = [c for c in self.edge.node.find_all() if isinstance(c, LbListener)]
        for key, metric, label, target in (
            ("requests", "ALBRequestCountPerTarget", f"{self.alb.arn_suffix}/{self.target_group.arn_suffix}",
             p.scaling.requests_per_target),
            ("cpu", "ASGAverageCPUUtilization", None, p.scaling.cpu_percent),
        ):
            AutoscalingPolicy(
                self, f"aws_autoscaling_policy.{key}",
                name=f"{p.prefix}-{key}-target",
                autoscaling_group_name=self.asg.name,
                policy_type="TargetTrackingScaling",
                estimated_instance_warmup=p.scaling.instance_warmup_seconds,
                target_tracking_configuration=AutoscalingPolicyTargetTrackingConfiguration(
                    predefined_metric_specification=(
                        AutoscalingPolicyTargetTrackingConfigurationPredefinedMetricSpecification(
                            predefined_metric_type=metric, resource_label=label)),
                    target_value=target,
                ),
                # The request metric needs the target group behind a listener of the load balancer.
                depends_on=listeners if label else None,
                lifecycle={"create_before_destroy": True},
            )

    def _waf(self, p: MlflowProps) -> None:
        """AWS managed rules in front of MLflow. The common rule set's 8 KB body
        limit only counts: artifact uploads go through the ALB (proxied artifacts)."""
        def managed(name: str, priority: int, excluded_to_count: tuple[str, ...] = ()) -> dict:
            statement: dict = {"VendorName": "AWS", "Name": name}
            if excluded_to_count:
                statement["RuleActionOverrides"] = [
                    {"Name": r, "ActionToUse": {"Count": {}}} for r in excluded_to_count]
            return {
                "Name": name, "Priority": priority,
                "Statement": {"ManagedRuleGroupStatement": statement},
                "OverrideAction": {"None": {}},
                "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True,
                                     "MetricName": name},
            }
        acl = Wafv2WebAcl(
            self, "aws_wafv2_web_acl.mlflow",
            name=f"{p.prefix}-alb",
            description="MLflow load balancer: AWS managed rules",
            scope="REGIONAL",
            default_action=Wafv2WebAclDefaultAction(allow={}),
            rule_json=json.dumps([
                managed("AWSManagedRulesAmazonIpReputationList", 0),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 1),
                managed("AWSManagedRulesCommonRuleSet", 2, ("SizeRestrictions_BODY",)),
            ]),
            visibility_config=Wafv2WebAclVisibilityConfig(
                cloudwatch_metrics_enabled=True, metric_name=f"{p.prefix}-alb", sampled_requests_enabled=True),
        )
        Wafv2WebAclAssociation(
            self, "aws_wafv2_web_acl_association.mlflow", resource_arn=self.alb.arn, web_acl_arn=acl.arn)

    def _bucket(self, name: str, bucket_name: str, kms_key_arn: Optional[str], force_destroy: bool,
                protect: bool = False) -> S3Bucket:
        """A private, encrypted, owner-enforced bucket.

        force_destroy only without deletion protection: destroy then empties it
        (logs and artifacts included) instead of failing on BucketNotEmpty."""
        bucket = S3Bucket(self, f"aws_s3_bucket.{name}", bucket=bucket_name, force_destroy=force_destroy,
                          tags={"Name": bucket_name},
                          lifecycle=guarded(protect))
        S3BucketPublicAccessBlock(
            self, f"aws_s3_bucket_public_access_block.{name}", bucket=bucket.id,
            block_public_acls=True, block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
        )
        S3BucketOwnershipControls(
            self, f"aws_s3_bucket_ownership_controls.{name}", bucket=bucket.id,
            rule=S3BucketOwnershipControlsRule(object_ownership="BucketOwnerEnforced"),
        )
        default = (
            S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="aws:kms", kms_master_key_id=kms_key_arn)
            if kms_key_arn else
            S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(sse_algorithm="AES256")
        )
        S3BucketServerSideEncryptionConfigurationA(
            self, f"aws_s3_bucket_server_side_encryption_configuration.{name}", bucket=bucket.id,
            rule=[S3BucketServerSideEncryptionConfigurationRuleA(
                apply_server_side_encryption_by_default=default, bucket_key_enabled=bool(kms_key_arn),
            )],
        )
        return bucket


def _user_data(bucket: str, key: str, sha256: str, region: str) -> str:
    """The bootstrap stub, base64-encoded by Terraform: the script literal, the bucket name filled in."""
    parts = render_user_data(bucket, key, sha256, region).split(bucket)
    pieces = [Fn.raw_string(parts[0])]
    for part in parts[1:]:
        pieces += [bucket, Fn.raw_string(part)]
    return Fn.base64encode(Fn.join("", pieces))


def _deny_insecure_transport(bucket_arn: str) -> dict:
    return {
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
