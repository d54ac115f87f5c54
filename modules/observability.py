"""Observability: what operators look at (docs/observability.md).

Two CloudWatch dashboards per environment (``mlflow``: load balancer, targets,
instances, database, Redis; ``logs``: the saved queries as tables), the saved
Logs Insights queries, and the Redis slow log's encrypted log group. Every
metric a widget names is one something publishes: AWS's own namespaces, or the
CloudWatch agent's (modules/mlflow_instance/templates/cloudwatch-agent.json.j2);
tests/test_observability.py checks them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_query_definition import (
    CloudwatchQueryDefinition,
)
from cdktf_cdktf_provider_aws.elasticache_replication_group import (
    ElasticacheReplicationGroupLogDeliveryConfiguration,
)
from constructs import Construct

from .naming import Names

# Requests slower than this are "slow": the alb_response_time alarm and the slow_requests query.
SLOW_REQUEST_SECONDS = 2

# One nginx access-log line (log_format "mlflow" in templates/nginx-main.conf.j2), as named fields.
NGINX_ACCESS_PARSE = (
    r'parse @message /^(?<ip>\S+) - (?<user>\S+) \[[^\]]+\] "(?<method>[A-Z]+) (?<path>[^ ?"]*)[^"]*" '
    r'(?<status>\d{3}) (?<bytes>\d+) "[^"]*" "[^"]*" xff="(?<client>[^"]*)" rt=(?<rt>[0-9.]+)/'
)
ACCESS_LOG = r"filter @logStream like /access\.log$/"

# key -> (name, log group key, query). error_analysis and performance_analysis of the HCL move to the first two.
QUERIES: dict[str, tuple[str, str, str]] = {
    "mlflow_errors": ("MLflow errors", "mlflow", "\n".join([
        "fields @timestamp, @logStream, @message",
        "| filter @message like /(?i)(error|exception|traceback|critical)/",
        "| sort @timestamp desc",
        "| limit 200",
    ])),
    "slow_requests": (f"Slow requests (over {SLOW_REQUEST_SECONDS} s)", "nginx", "\n".join([
        ACCESS_LOG,
        f"| {NGINX_ACCESS_PARSE}",
        f"| filter rt >= {SLOW_REQUEST_SECONDS}",
        "| sort rt desc",
        "| display @timestamp, method, path, status, rt, client",
        "| limit 200",
    ])),
    "server_errors_by_path": ("5xx by path", "nginx", "\n".join([
        ACCESS_LOG,
        f"| {NGINX_ACCESS_PARSE}",
        "| filter status >= 500",
        "| stats count(*) as errors by method, path, status",
        "| sort errors desc",
        "| limit 100",
    ])),
    "auth_failures": ("Authentication failures", "nginx", "\n".join([
        ACCESS_LOG,
        f"| {NGINX_ACCESS_PARSE}",
        "| filter status = 401 or status = 403",
        "| stats count(*) as failures, latest(@timestamp) as last_seen by client, user, path, status",
        "| sort failures desc",
        "| limit 100",
    ])),
    "bootstrap_failures": ("Instance bootstrap failures", "system", "\n".join([
        "fields @timestamp, @logStream, @message",
        "| filter @logStream like /cloud-init-output/",
        "| filter @message like /(?i)(error|fail|traceback)/",
        "| sort @timestamp desc",
        "| limit 200",
    ])),
}


@dataclass(frozen=True)
class ObservabilityProps:
    prefix: str
    """``name-environment``: prefix of the dashboards' names (a folder per environment in the console)."""
    region: str
    """AWS region of the dashboards' widgets."""
    names: Names
    """Dashboard names, the slow-log group name and the instances' log groups."""
    kms_key_arn: str
    """The deployment key's ARN: encryption of the Redis slow-log group (``Security.kms_key.arn``)."""
    log_retention_days: int
    """Retention of the Redis slow-log group."""
    metrics_namespace: str
    """Namespace of the CloudWatch agent on the instances."""
    asg_name: str
    """Auto Scaling group of the instances (``Mlflow.asg_name``)."""
    asg_min_size: int
    """Least size of the group (drawn on the capacity widget)."""
    asg_max_size: int
    """Greatest size of the group (drawn on the capacity widget)."""
    alb_arn_suffix: str
    """Load balancer in CloudWatch dimensions (``Mlflow.alb_arn_suffix``)."""
    target_group_arn_suffix: str
    """Target group in CloudWatch dimensions (``Mlflow.target_group_arn_suffix``)."""
    db_instance_id: str
    """RDS instance of the database widgets (``Database.db_instance_id``)."""
    db_connections_alarm: int
    """Where the connections alarm fires (drawn on the connections widget)."""
    redis_cluster_ids: list[str]
    """Member clusters of the replication group (<id>-001, ...)."""
    scaling_requests_per_target: int
    """Target of request scaling (drawn on the requests-per-instance widget)."""
    scaling_cpu_percent: int
    """Target of CPU scaling (drawn on the CPU widget)."""


class Observability(Construct):
    """Dashboards, saved queries, and the Redis slow log's log group."""

    def __init__(self, scope: Construct, id: str, props: ObservabilityProps):
        super().__init__(scope, id)
        p = props
        groups = p.names.log_groups

        slow_log = CloudwatchLogGroup(
            self, "aws_cloudwatch_log_group.redis_slow_log",
            name=p.names.redis_slow_log_group,
            retention_in_days=p.log_retention_days,
            kms_key_id=p.kms_key_arn,
        )
        # Set on the replication group by main.py (database.py owns the group).
        self.redis_log_delivery = [ElasticacheReplicationGroupLogDeliveryConfiguration(
            destination=slow_log.name, destination_type="cloudwatch-logs", log_format="json",
            log_type="slow-log",
        )]

        for key, (title, group, query) in QUERIES.items():
            CloudwatchQueryDefinition(
                self, f"aws_cloudwatch_query_definition.{key}",
                name=f"{p.prefix}/{title}",  # "/" makes a folder per environment in the console
                log_group_names=[groups[group]],
                query_string=query,
            )

        CloudwatchDashboard(
            self, "aws_cloudwatch_dashboard.mlflow",
            dashboard_name=p.names.dashboards["mlflow"],
            dashboard_body=json.dumps({"widgets": _layout(metric_widgets(p))}),
        )
        CloudwatchDashboard(
            self, "aws_cloudwatch_dashboard.logs",
            dashboard_name=p.names.dashboards["logs"],
            dashboard_body=json.dumps({"widgets": _layout([
                {"type": "log", "properties": {
                    "title": title, "region": p.region, "view": "table",
                    "query": f"SOURCE '{groups[group]}' | {query}",
                }}
                for title, group, query in QUERIES.values()
            ], width=12)}),
        )


def metric_widgets(p: ObservabilityProps) -> list[dict]:
    """The metric widgets of the environment dashboard, top to bottom."""
    lb = ["LoadBalancer", p.alb_arn_suffix]
    tg = ["TargetGroup", p.target_group_arn_suffix, *lb]
    asg = ["AutoScalingGroupName", p.asg_name]
    db = ["DBInstanceIdentifier", p.db_instance_id]
    elb, rds, cache = "AWS/ApplicationELB", "AWS/RDS", "AWS/ElastiCache"

    def graph(title: str, metrics: list[list], stat: str = "Average", period: int = 60,
              lines: tuple[tuple[str, float], ...] = (), y_max: float | None = None) -> dict:
        props: dict = {"title": title, "region": p.region, "view": "timeSeries", "stat": stat,
                       "period": period, "metrics": metrics}
        if lines:
            props["annotations"] = {"horizontal": [{"label": label, "value": value} for label, value in lines]}
        if y_max is not None:
            props["yAxis"] = {"left": {"min": 0, "max": y_max}}
        return {"type": "metric", "properties": props}

    def per_node(metric: str, stat: str) -> list[list]:
        return [[cache, metric, "CacheClusterId", c, {"stat": stat, "label": c}] for c in p.redis_cluster_ids]

    return [
        graph("Requests per minute", [
            [elb, "RequestCount", *lb, {"stat": "Sum", "label": "all instances"}],
            [elb, "RequestCountPerTarget", *tg, {"stat": "Sum", "label": "per instance"}],
        ], lines=(("scaling target per instance", p.scaling_requests_per_target),)),
        graph("Latency (seconds)", [
            [elb, "TargetResponseTime", *lb, {"stat": "p50", "label": "p50"}],
            [elb, "TargetResponseTime", *lb, {"stat": "p99", "label": "p99"}],
        ], lines=(("slow", SLOW_REQUEST_SECONDS),)),
        graph("5xx per minute", [
            [elb, "HTTPCode_ELB_5XX_Count", *lb, {"stat": "Sum", "label": "load balancer"}],
            [elb, "HTTPCode_Target_5XX_Count", *tg, {"stat": "Sum", "label": "MLflow"}],
        ], stat="Sum"),
        graph("Targets", [
            [elb, "HealthyHostCount", *tg, {"stat": "Minimum", "label": "healthy"}],
            [elb, "UnHealthyHostCount", *tg, {"stat": "Maximum", "label": "unhealthy"}],
        ], lines=(("minimum", p.asg_min_size),)),
        graph("Instances", [
            ["AWS/AutoScaling", "GroupInServiceInstances", *asg, {"label": "in service"}],
            ["AWS/AutoScaling", "GroupDesiredCapacity", *asg, {"label": "desired"}],
        ], lines=(("minimum", p.asg_min_size), ("maximum", p.asg_max_size))),
        graph("Instance CPU (%)", [
            ["AWS/EC2", "CPUUtilization", *asg, {"stat": "Average", "label": "average"}],
            ["AWS/EC2", "CPUUtilization", *asg, {"stat": "Maximum", "label": "busiest instance"}],
        ], lines=(("scaling target", p.scaling_cpu_percent),), y_max=100),
        graph("Instance memory and disk (%, fullest instance)", [
            [p.metrics_namespace, "mem_used_percent", *asg, {"stat": "Maximum", "label": "memory"}],
            [p.metrics_namespace, "disk_used_percent", *asg, {"stat": "Maximum", "label": "disk /"}],
        ], stat="Maximum", y_max=100),
        graph("Database CPU (%)", [[rds, "CPUUtilization", *db]], y_max=100),
        graph("Database connections", [[rds, "DatabaseConnections", *db, {"stat": "Maximum"}]],
              stat="Maximum", lines=(("alarm", p.db_connections_alarm),)),
        graph("Database free storage (bytes)", [[rds, "FreeStorageSpace", *db, {"stat": "Minimum"}]],
              stat="Minimum", period=300),
        graph("Database IOPS", [
            [rds, "ReadIOPS", *db, {"label": "read"}],
            [rds, "WriteIOPS", *db, {"label": "write"}],
        ]),
        graph("Redis engine CPU (%)", per_node("EngineCPUUtilization", "Average"), y_max=100),
        graph("Redis memory used (%)", per_node("DatabaseMemoryUsagePercentage", "Maximum"),
              stat="Maximum", y_max=100),
        graph("Redis evictions", per_node("Evictions", "Sum"), stat="Sum"),
    ]


def _layout(widgets: list[dict], width: int = 8, height: int = 6) -> list[dict]:
    """Widgets left to right, top to bottom, on CloudWatch's 24-column grid."""
    per_row = 24 // width
    return [{**w, "x": (i % per_row) * width, "y": (i // per_row) * height, "width": width, "height": height}
            for i, w in enumerate(widgets)]
