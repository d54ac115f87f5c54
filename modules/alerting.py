"""Alerting (guide: Alerting Resources).

The encrypted SNS alerts topic with its policy and e-mail subscriptions, Auto
Scaling notifications, the CloudWatch alarms that publish to it, and optional
chat alerts through AWS Chatbot (docs/observability.md). Every alarm names a
metric something publishes (tests/test_observability.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from cdktf import TerraformProvider
from cdktf_cdktf_provider_aws.autoscaling_notification import AutoscalingNotification
from cdktf_cdktf_provider_aws.chatbot_slack_channel_configuration import (
    ChatbotSlackChannelConfiguration,
)
from cdktf_cdktf_provider_aws.chatbot_teams_channel_configuration import (
    ChatbotTeamsChannelConfiguration,
)
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from .base import assume_role_policy, element, policy_document, service_principal
from .observability import SLOW_REQUEST_SECONDS

MEMORY_PERCENT = 85  # the HCL deployment's asg_memory_high threshold
DISK_PERCENT = 85
REDIS_MEMORY_PERCENT = 80
TARGET_5XX_PER_5_MINUTES = 10


@dataclass(frozen=True)
class ChatProps:
    """One Slack or Teams channel that hears the alerts topic through AWS Chatbot."""

    platform: Literal["slack", "teams"]
    """``slack`` or ``teams``."""
    channel_id: str
    """Slack channel id, or Teams channel id."""
    team_id: str
    """Slack workspace id, or Teams team id."""
    tenant_id: Optional[str]
    """Microsoft Entra tenant of a Teams channel; None for Slack."""
    provider: TerraformProvider
    """The aws provider aliased to a region of the Chatbot API."""


@dataclass(frozen=True)
class AlertingProps:
    prefix: str
    """``name-environment``: prefix of the topic, alarm and Chatbot names."""
    account_id: str
    """Account of the deployment (topic policy conditions)."""
    kms_key_id: str
    """Key id of the deployment key, the topic's encryption key (``Security.kms_key.key_id``)."""
    alert_emails: list[str]
    """Email addresses subscribed to the alerts topic (each must confirm); may be empty."""
    asg_name: str
    """Auto Scaling group of the instances (``Mlflow.asg_name``)."""
    alb_arn_suffix: str
    """Load balancer in CloudWatch dimensions (``Mlflow.alb_arn_suffix``)."""
    target_group_arn_suffix: str
    """Target group in CloudWatch dimensions (``Mlflow.target_group_arn_suffix``)."""
    db_instance_id: str
    """RDS instance of the database alarms (``Database.db_instance_id``)."""
    metrics_namespace: str
    """Namespace of the CloudWatch agent on the instances (memory, disk)."""
    asg_min_size: int
    """Least size of the group (the healthy-hosts alarm fires below it)."""
    asg_max_size: int
    """Greatest size of the group (the group-at-maximum alarm)."""
    db_connections_alarm: int
    """DatabaseConnections above which the connections alarm fires."""
    redis_cluster_ids: list[str]
    """Member clusters of the Redis replication group."""
    partition: str = "aws"
    """ARN partition; default ``aws``."""
    chat: Optional[ChatProps] = None
    """A Slack or Teams channel for the alerts through AWS Chatbot; default None (email only)."""


class Alerting(Construct):
    """Who hears about trouble, and what counts as trouble."""

    def __init__(self, scope: Construct, id: str, props: AlertingProps):
        super().__init__(scope, id)
        p = props
        self.topic = SnsTopic(
            self, "aws_sns_topic.alerts",
            name=f"{p.prefix}-alerts",
            kms_master_key_id=p.kms_key_id,
            tags={"Name": f"{p.prefix}-alerts"},
        )
        SnsTopicPolicy(
            self, "aws_sns_topic_policy.alerts",
            arn=self.topic.arn,
            policy=policy_document(
                {"Sid": "CloudWatchAlarmsPublish", "Effect": "Allow",
                 "Principal": {"Service": service_principal(self, "cloudwatch")},
                 "Action": "sns:Publish", "Resource": self.topic.arn,
                 "Condition": {"StringEquals": {"aws:SourceAccount": p.account_id}}},
                {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                 "Action": "sns:Publish", "Resource": self.topic.arn,
                 "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
            ),
        )
        if p.alert_emails:
            SnsTopicSubscription(
                self, "aws_sns_topic_subscription.email",
                count=len(p.alert_emails),
                topic_arn=self.topic.arn,
                protocol="email",
                endpoint=element(p.alert_emails),
            )
        AutoscalingNotification(
            self, "aws_autoscaling_notification.mlflow",
            group_names=[p.asg_name],
            notifications=[
                "autoscaling:EC2_INSTANCE_LAUNCH_ERROR",
                "autoscaling:EC2_INSTANCE_TERMINATE",
                "autoscaling:EC2_INSTANCE_TERMINATE_ERROR",
            ],
            topic_arn=self.topic.arn,
        )
        self._alarms(p)
        if p.chat is not None:
            self._chat(p, p.chat)

        # Typed outputs.
        self.topic_arn: str = self.topic.arn

    def _alarms(self, p: AlertingProps) -> None:
        def alarm(name: str, description: str, namespace: str | None, metric: str | None,
                  dimensions: dict[str, str] | None, comparison: str, threshold: float, statistic: str = "Average",
                  periods: int = 3, period: int = 300, treat_missing: str = "notBreaching",
                  alarm_name: str | None = None, metric_query: list | None = None,
                  replaces_adopted: bool = False, actions: bool = True) -> None:
            CloudwatchMetricAlarm(
                self, f"aws_cloudwatch_metric_alarm.{name}",
                alarm_name=alarm_name or f"{p.prefix}-{name.replace('_', '-')}",
                alarm_description=description,
                namespace=namespace, metric_name=metric, dimensions=dimensions,
                statistic=statistic if metric_query is None else None,
                period=period if metric_query is None else None,
                metric_query=metric_query,
                evaluation_periods=periods, comparison_operator=comparison, threshold=threshold,
                treat_missing_data=treat_missing,
                alarm_actions=[self.topic.arn], ok_actions=[self.topic.arn], actions_enabled=actions,
                # Named unlike the adopted alarm it replaces (modules/adoption.py): built before that one goes.
                lifecycle={"create_before_destroy": True} if replaces_adopted else None,
            )

        lb = {"LoadBalancer": p.alb_arn_suffix}
        tg = {"TargetGroup": p.target_group_arn_suffix, **lb}
        asg = {"AutoScalingGroupName": p.asg_name}
        db = {"DBInstanceIdentifier": p.db_instance_id}
        alarm("alb_error_rate", "Load balancer returned 5xx responses", "AWS/ApplicationELB",
              "HTTPCode_ELB_5XX_Count", lb, "GreaterThanThreshold", 10, statistic="Sum", periods=1)
        alarm("alb_response_time", f"MLflow answers slowly (average over {SLOW_REQUEST_SECONDS} s)",
              "AWS/ApplicationELB", "TargetResponseTime", lb, "GreaterThanThreshold", SLOW_REQUEST_SECONDS)
        alarm("unhealthy_hosts", "An MLflow instance fails its health check", "AWS/ApplicationELB",
              "UnHealthyHostCount", tg, "GreaterThanThreshold", 0, statistic="Maximum", periods=2)
        alarm("target_5xx", f"MLflow answered 5xx more than {TARGET_5XX_PER_5_MINUTES} times in 5 minutes",
              "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", tg, "GreaterThanThreshold",
              TARGET_5XX_PER_5_MINUTES, statistic="Sum", periods=1)
        # Longer than one instance's boot, so a replacement in progress does not page; no data is no host.
        alarm("healthy_hosts_low", f"Fewer healthy MLflow instances than the minimum ({p.asg_min_size}) "
              "for 10 minutes", "AWS/ApplicationELB", "HealthyHostCount", tg, "LessThanThreshold",
              p.asg_min_size, statistic="Minimum", period=60, periods=10, treat_missing="breaching",
              replaces_adopted=True)
        alarm("asg_at_max_capacity", f"Demand scaling is at asg_max_size ({p.asg_max_size}) for 15 minutes: "
              "raise it or find the load", "AWS/AutoScaling", "GroupInServiceInstances", asg,
              "GreaterThanOrEqualToThreshold", p.asg_max_size, statistic="Minimum", replaces_adopted=True,
              actions=p.asg_max_size > p.asg_min_size)  # a pinned size (min = max) is always "at max"
        alarm("asg_cpu_high", "MLflow instances CPU above 80%", "AWS/EC2", "CPUUtilization",
              asg, "GreaterThanThreshold", 80)
        alarm("asg_memory_high", f"An MLflow instance uses over {MEMORY_PERCENT}% of its memory",
              p.metrics_namespace, "mem_used_percent", asg, "GreaterThanThreshold", MEMORY_PERCENT,
              statistic="Maximum")
        alarm("instance_disk_high", f"An MLflow instance's root volume is over {DISK_PERCENT}% full",
              p.metrics_namespace, "disk_used_percent", asg, "GreaterThanThreshold", DISK_PERCENT,
              statistic="Maximum", periods=1)
        alarm("rds_cpu_high", "Database CPU above 80%", "AWS/RDS", "CPUUtilization", db, "GreaterThanThreshold", 80)
        alarm("rds_free_storage_low", "Database free storage below 2 GiB", "AWS/RDS", "FreeStorageSpace", db,
              "LessThanThreshold", 2 * 1024 ** 3, statistic="Minimum", periods=1)
        alarm("rds_connections", f"Database connections above {p.db_connections_alarm} (docs/observability.md)",
              "AWS/RDS", "DatabaseConnections", db, "GreaterThanThreshold", p.db_connections_alarm,
              statistic="Maximum", periods=2, alarm_name=f"{p.prefix}-rds-connections-high")
        # The fullest node of the replication group (a failover moves the primary).
        nodes = [CloudwatchMetricAlarmMetricQuery(
            id=f"m{i}", return_data=False,
            metric=CloudwatchMetricAlarmMetricQueryMetric(
                namespace="AWS/ElastiCache", metric_name="DatabaseMemoryUsagePercentage",
                dimensions={"CacheClusterId": c}, period=300, stat="Maximum"),
        ) for i, c in enumerate(p.redis_cluster_ids, 1)]
        fullest = CloudwatchMetricAlarmMetricQuery(
            id="fullest", return_data=True, label="fullest node",
            expression=f"MAX([{', '.join(q.id for q in nodes)}])")
        alarm("redis_memory_high", f"A Redis node uses over {REDIS_MEMORY_PERCENT}% of its memory (keys are "
              "being evicted)", None, None, None, "GreaterThanThreshold", REDIS_MEMORY_PERCENT,
              metric_query=[*nodes, fullest])

    def _chat(self, p: AlertingProps, chat: ChatProps) -> None:
        """AWS Chatbot posts the topic's messages in the channel. No Lambda, no webhook secret."""
        role = IamRole(
            self, "aws_iam_role.chatbot",
            name=f"{p.prefix}-chatbot",
            description="AWS Chatbot channel role: reads CloudWatch to render alarm notifications",
            assume_role_policy=assume_role_policy(service_principal(self, "chatbot"), p.account_id),
        )
        IamRolePolicy(
            self, "aws_iam_role_policy.chatbot",
            name="cloudwatch-read-for-notifications",
            role=role.id,
            # AWS Chatbot's "notification permissions" template; these actions are read-only.
            policy=policy_document({
                "Effect": "Allow",
                "Action": ["cloudwatch:Describe*", "cloudwatch:Get*", "cloudwatch:List*"],
                "Resource": "*",
            }),
        )
        common = dict(
            configuration_name=f"{p.prefix}-alerts",
            iam_role_arn=role.arn,
            sns_topic_arns=[self.topic.arn],
            # The most any channel member can do through the bot, whatever their own role allows.
            guardrail_policy_arns=[f"arn:{p.partition}:iam::aws:policy/CloudWatchReadOnlyAccess"],
            user_authorization_required=True,
            logging_level="NONE",
            provider=chat.provider,
        )
        if chat.platform == "slack":
            ChatbotSlackChannelConfiguration(
                self, "aws_chatbot_slack_channel_configuration.alerts",
                slack_team_id=chat.team_id, slack_channel_id=chat.channel_id, **common)
        else:
            ChatbotTeamsChannelConfiguration(
                self, "aws_chatbot_teams_channel_configuration.alerts",
                team_id=chat.team_id, channel_id=chat.channel_id, tenant_id=chat.tenant_id, **common)
