"""Adopting a deployment of the public HCL MLflow stack the resources guide documents.

With ``adopt_hcl_deployment = true`` the stack emits a ``moved`` block from
each address of that deployment (``module.networking.aws_subnet.public[0]``,
...) to ours wherever we manage the same thing, and a ``removed`` block with
``lifecycle { destroy = false }`` for what it manages and we deliberately do
not: Terraform forgets those without destroying them. The first plan after the
switch then shows moves and nothing to destroy. The table below is that
deployment's address list (tests/spec/hcl-deployment-addresses.tsv) mapped
one by one; docs/adoption.md lists what moves, what is replaced and what is forgotten, and why.
"""
from __future__ import annotations

from .settings import Settings

# HCL address -> our address. "[*]" marks a counted resource whose instances
# move one by one (instance keys included); "[0]" a conditional single one.
MOVED: dict[str, str] = {
    "module.networking.aws_vpc.main": "aws_vpc.main",
    "module.networking.aws_internet_gateway.main": "aws_internet_gateway.main",
    "module.networking.aws_subnet.public[*]": "aws_subnet.public[*]",
    "module.networking.aws_subnet.private[*]": "aws_subnet.private[*]",
    "module.networking.aws_subnet.database[*]": "aws_subnet.database[*]",
    "module.networking.aws_db_subnet_group.database": "aws_db_subnet_group.database",
    "module.networking.aws_eip.nat[*]": "aws_eip.nat[*]",
    "module.networking.aws_nat_gateway.main[*]": "aws_nat_gateway.main[*]",
    "module.networking.aws_route_table.public": "aws_route_table.public",
    "module.networking.aws_route_table.private[*]": "aws_route_table.private[*]",
    "module.networking.aws_route_table.database": "aws_route_table.database",
    "module.networking.aws_route_table_association.public[*]": "aws_route_table_association.public[*]",
    "module.networking.aws_route_table_association.private[*]": "aws_route_table_association.private[*]",
    "module.networking.aws_route_table_association.database[*]": "aws_route_table_association.database[*]",
    "module.networking.aws_vpc_endpoint.s3[0]": "aws_vpc_endpoint.s3",
    "module.networking.aws_vpc_endpoint.ec2[0]": "aws_vpc_endpoint.ec2",
    "module.networking.aws_security_group.vpc_endpoints[0]": "aws_security_group.vpc_endpoints",
    "module.security.aws_security_group.alb": "aws_security_group.alb",
    "module.security.aws_security_group.mlflow_app": "aws_security_group.mlflow_app",
    "module.security.aws_security_group.database": "aws_security_group.database",
    "module.security.aws_security_group.elasticache": "aws_security_group.elasticache",
    "module.security.aws_iam_role.mlflow_instance_role": "aws_iam_role.mlflow_instance_role",
    "module.security.aws_iam_policy.mlflow_s3_policy": "aws_iam_policy.mlflow_s3_policy",
    "module.security.aws_iam_policy.mlflow_cloudwatch_policy": "aws_iam_policy.mlflow_cloudwatch_policy",
    "module.security.aws_iam_policy.mlflow_ssm_policy": "aws_iam_policy.mlflow_ssm_policy",
    "module.security.aws_iam_policy.mlflow_kms_policy": "aws_iam_policy.mlflow_kms_policy",
    "module.security.aws_iam_role_policy_attachment.mlflow_s3_policy_attachment":
        "aws_iam_role_policy_attachment.mlflow_s3_policy_attachment",
    "module.security.aws_iam_role_policy_attachment.mlflow_cloudwatch_policy_attachment":
        "aws_iam_role_policy_attachment.mlflow_cloudwatch_policy_attachment",
    "module.security.aws_iam_role_policy_attachment.mlflow_ssm_policy_attachment":
        "aws_iam_role_policy_attachment.mlflow_ssm_policy_attachment",
    "module.security.aws_iam_role_policy_attachment.mlflow_kms_policy_attachment":
        "aws_iam_role_policy_attachment.mlflow_kms_policy_attachment",
    "module.security.aws_iam_role_policy_attachment.mlflow_ssm_managed_policy":
        "aws_iam_role_policy_attachment.mlflow_ssm_managed_policy",
    "module.security.aws_iam_instance_profile.mlflow_instance_profile":
        "aws_iam_instance_profile.mlflow_instance_profile",
    "module.security.aws_kms_key.mlflow": "aws_kms_key.mlflow",
    "module.security.aws_kms_alias.mlflow": "aws_kms_alias.mlflow",
    "module.database.aws_db_parameter_group.mlflow": "aws_db_parameter_group.mlflow",
    "module.database.aws_db_instance.mlflow": "aws_db_instance.mlflow",
    "module.database.aws_iam_role.rds_enhanced_monitoring[0]": "aws_iam_role.rds_enhanced_monitoring",
    "module.database.aws_iam_role_policy_attachment.rds_enhanced_monitoring[0]":
        "aws_iam_role_policy_attachment.rds_enhanced_monitoring",
    "module.database.aws_elasticache_subnet_group.mlflow[0]": "aws_elasticache_subnet_group.mlflow",
    "module.database.aws_elasticache_parameter_group.mlflow[0]": "aws_elasticache_parameter_group.mlflow",
    "module.database.aws_elasticache_replication_group.mlflow[0]": "aws_elasticache_replication_group.mlflow",
    "module.database.aws_ssm_parameter.db_host": "aws_ssm_parameter.db_host",
    "module.database.aws_ssm_parameter.db_port": "aws_ssm_parameter.db_port",
    "module.database.aws_ssm_parameter.db_name": "aws_ssm_parameter.db_name",
    "module.database.aws_ssm_parameter.db_username": "aws_ssm_parameter.db_username",
    "module.database.aws_ssm_parameter.db_password": "aws_ssm_parameter.db_password",
    "module.database.aws_ssm_parameter.cache_endpoint[0]": "aws_ssm_parameter.cache_endpoint",
    "module.database.aws_ssm_parameter.cache_port[0]": "aws_ssm_parameter.cache_port",
    "module.mlflow.aws_s3_bucket.mlflow_artifacts": "aws_s3_bucket.mlflow_artifacts",
    "module.mlflow.aws_s3_bucket_versioning.mlflow_artifacts": "aws_s3_bucket_versioning.mlflow_artifacts",
    "module.mlflow.aws_s3_bucket_server_side_encryption_configuration.mlflow_artifacts":
        "aws_s3_bucket_server_side_encryption_configuration.mlflow_artifacts",
    "module.mlflow.aws_s3_bucket_public_access_block.mlflow_artifacts":
        "aws_s3_bucket_public_access_block.mlflow_artifacts",
    "module.mlflow.aws_s3_bucket_lifecycle_configuration.mlflow_artifacts":
        "aws_s3_bucket_lifecycle_configuration.mlflow_artifacts",
    "module.mlflow.aws_lb.mlflow": "aws_lb.mlflow",
    "module.mlflow.aws_s3_bucket.alb_logs": "aws_s3_bucket.alb_logs",
    "module.mlflow.aws_s3_bucket_server_side_encryption_configuration.alb_logs":
        "aws_s3_bucket_server_side_encryption_configuration.alb_logs",
    "module.mlflow.aws_s3_bucket_public_access_block.alb_logs": "aws_s3_bucket_public_access_block.alb_logs",
    "module.mlflow.aws_s3_bucket_policy.alb_logs": "aws_s3_bucket_policy.alb_logs",
    "module.mlflow.aws_lb_target_group.mlflow": "aws_lb_target_group.mlflow",
    # aws_lb_listener.mlflow and .http_redirect[0]: see listener_moves()
    "module.mlflow.aws_launch_template.mlflow": "aws_launch_template.mlflow",
    "module.mlflow.aws_autoscaling_group.mlflow": "aws_autoscaling_group.mlflow",
    "module.mlflow.aws_cloudwatch_log_group.mlflow": "aws_cloudwatch_log_group.mlflow",
    "module.monitoring.aws_cloudwatch_metric_alarm.alb_response_time": "aws_cloudwatch_metric_alarm.alb_response_time",
    "module.monitoring.aws_cloudwatch_metric_alarm.alb_error_rate": "aws_cloudwatch_metric_alarm.alb_error_rate",
    "module.monitoring.aws_cloudwatch_metric_alarm.asg_cpu_high": "aws_cloudwatch_metric_alarm.asg_cpu_high",
    "module.monitoring.aws_cloudwatch_metric_alarm.rds_cpu_high": "aws_cloudwatch_metric_alarm.rds_cpu_high",
    # Monitoring and scaling (docs/observability.md). Same names under naming = "hcl": updated in place.
    "module.monitoring.aws_cloudwatch_metric_alarm.asg_memory_high": "aws_cloudwatch_metric_alarm.asg_memory_high",
    "module.monitoring.aws_cloudwatch_metric_alarm.rds_connections": "aws_cloudwatch_metric_alarm.rds_connections",
    "module.monitoring.aws_cloudwatch_dashboard.mlflow_main": "aws_cloudwatch_dashboard.mlflow",
    "module.mlflow.aws_cloudwatch_dashboard.mlflow": "aws_cloudwatch_dashboard.logs",
    "module.monitoring.aws_cloudwatch_query_definition.error_analysis": "aws_cloudwatch_query_definition.mlflow_errors",
    "module.monitoring.aws_cloudwatch_query_definition.performance_analysis":
        "aws_cloudwatch_query_definition.slow_requests",
    "module.database.aws_cloudwatch_log_group.elasticache_slow[0]": "aws_cloudwatch_log_group.redis_slow_log",
    # Replaced, create-before-destroy (see REPLACED).
    "module.mlflow.aws_autoscaling_policy.scale_up": "aws_autoscaling_policy.cpu",
    "module.mlflow.aws_autoscaling_policy.scale_down": "aws_autoscaling_policy.requests",
    "module.mlflow.aws_cloudwatch_metric_alarm.cpu_high": "aws_cloudwatch_metric_alarm.asg_at_max_capacity",
    "module.mlflow.aws_cloudwatch_metric_alarm.cpu_low": "aws_cloudwatch_metric_alarm.healthy_hosts_low",
}

# Moved, then replaced by ours, create-before-destroy (ours are built before theirs go): our address -> why.
REPLACED: dict[str, str] = {
    "aws_autoscaling_policy.cpu": "a simple-scaling policy cannot become target tracking in place; ours has "
                                  "its own name, so it is created first and the step policy deleted after",
    "aws_autoscaling_policy.requests": "as aws_autoscaling_policy.cpu: the HCL's two step policies become our two "
                                       "target-tracking policies (which maps to which only orders the swap)",
    "aws_cloudwatch_metric_alarm.asg_at_max_capacity": "cpu_high drove scale_up; target tracking owns its alarms, "
                                                        "so scale-up's alarm becomes 'no room left to scale up'",
    "aws_cloudwatch_metric_alarm.healthy_hosts_low": "cpu_low drove scale_down; it becomes the healthy-hosts "
                                                      "alarm (the pairing only orders the swap)",
}

SLACK_RELAY = ("the Slack relay (only with slack_webhook_url): left running, not managed; set chat_alerts "
               "(AWS Chatbot, no webhook secret) and then delete the relay by hand")

# Managed there, deliberately not here: forgotten by Terraform, never destroyed.
REMOVED: dict[str, str] = {
    "tls_private_key.mlflow_key": "we never generate private keys: they would sit in the state in plain text",
    "module.security.aws_iam_role_policy.mlflow_serial_console_policy": "no serial-console access; Session Manager instead",
    "module.security.aws_ec2_serial_console_access.mlflow": "account-wide setting, not ours to own",
    "module.database.random_password.db_password": "our password is ephemeral and write-only, never in the state",
    "module.monitoring.aws_lambda_function.slack_notification": SLACK_RELAY,
    "module.monitoring.aws_iam_role.lambda_role": SLACK_RELAY,
    "module.monitoring.aws_iam_role_policy_attachment.lambda_logs": SLACK_RELAY,
    "module.monitoring.aws_sns_topic_subscription.slack_lambda": SLACK_RELAY,
    "module.monitoring.aws_lambda_permission.allow_sns": SLACK_RELAY,
}

# At the root there and here, at the same address: nothing to move.
SAME_ADDRESS = ("aws_key_pair.mlflow_key", "random_id.bucket_suffix", "aws_sns_topic.alerts")


def listener_moves(https: bool) -> dict[str, str]:
    """Its single listener is HTTPS when it has a certificate, else HTTP."""
    if https:
        return {"module.mlflow.aws_lb_listener.mlflow": "aws_lb_listener.https",
                "module.mlflow.aws_lb_listener.http_redirect[0]": "aws_lb_listener.http"}
    return {"module.mlflow.aws_lb_listener.mlflow": "aws_lb_listener.http"}


def _count_of(address: str, s: Settings) -> int:
    return s.nat_count if address.startswith(("aws_eip.nat", "aws_nat_gateway.main")) else len(s.azs)


def moved_blocks(s: Settings) -> list[dict[str, str]]:
    """One moved block per instance, in table order."""
    blocks = []
    for src, dst in {**MOVED, **listener_moves(s.https)}.items():
        if src.endswith("[*]"):
            for i in range(_count_of(dst, s)):
                blocks.append({"from": src.replace("[*]", f"[{i}]"), "to": dst.replace("[*]", f"[{i}]")})
        else:
            blocks.append({"from": src, "to": dst})
    return blocks


def removed_blocks() -> list[dict]:
    return [{"from": src, "lifecycle": {"destroy": False}} for src in REMOVED]
