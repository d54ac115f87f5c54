"""Alerting (guide: Alerting Resources).

The encrypted SNS alerts topic with its policy and e-mail subscriptions, Auto
Scaling notifications, and the CloudWatch alarms that publish to it.
"""
from __future__ import annotations

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.autoscaling_notification import AutoscalingNotification
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from constructs import Construct

from .base import element, policy_document


@dataclass(frozen=True)
class AlertingProps:
    prefix: str
    account_id: str
    kms_key_id: str
    alert_emails: list[str]
    asg_name: str
    alb_arn_suffix: str
    target_group_arn_suffix: str
    db_instance_id: str


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
                 "Principal": {"Service": "cloudwatch.amazonaws.com"},
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

        def alarm(name: str, description: str, namespace: str, metric: str, dimensions: dict[str, str],
                  comparison: str, threshold: float, statistic: str = "Average", periods: int = 3,
                  treat_missing: str = "notBreaching") -> None:
            CloudwatchMetricAlarm(
                self, f"aws_cloudwatch_metric_alarm.{name}",
                alarm_name=f"{p.prefix}-{name.replace('_', '-')}",
                alarm_description=description,
                namespace=namespace, metric_name=metric, dimensions=dimensions,
                statistic=statistic, period=300, evaluation_periods=periods,
                comparison_operator=comparison, threshold=threshold,
                treat_missing_data=treat_missing,
                alarm_actions=[self.topic.arn], ok_actions=[self.topic.arn],
            )

        lb = {"LoadBalancer": p.alb_arn_suffix}
        alarm("alb_error_rate", "Load balancer returned 5xx responses", "AWS/ApplicationELB",
              "HTTPCode_ELB_5XX_Count", lb, "GreaterThanThreshold", 10, statistic="Sum", periods=1)
        alarm("alb_response_time", "MLflow answers slowly (average over 2 s)", "AWS/ApplicationELB",
              "TargetResponseTime", lb, "GreaterThanThreshold", 2)
        alarm("unhealthy_hosts", "An MLflow instance fails its health check", "AWS/ApplicationELB",
              "UnHealthyHostCount", {**lb, "TargetGroup": p.target_group_arn_suffix},
              "GreaterThanThreshold", 0, statistic="Maximum", periods=2)
        alarm("asg_cpu_high", "MLflow instances CPU above 80%", "AWS/EC2", "CPUUtilization",
              {"AutoScalingGroupName": p.asg_name}, "GreaterThanThreshold", 80)
        db = {"DBInstanceIdentifier": p.db_instance_id}
        alarm("rds_cpu_high", "Database CPU above 80%", "AWS/RDS", "CPUUtilization", db, "GreaterThanThreshold", 80)
        alarm("rds_free_storage_low", "Database free storage below 2 GiB", "AWS/RDS", "FreeStorageSpace", db,
              "LessThanThreshold", 2 * 1024 ** 3, statistic="Minimum", periods=1)

        # Typed outputs.
        self.topic_arn: str = self.topic.arn
