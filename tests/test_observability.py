"""Demand scaling, dashboards, saved queries, alarms and chat alerts (docs/observability.md).

The central check: every metric an alarm or a dashboard widget names is one
that something publishes, with exactly the dimensions it publishes it under:
the CloudWatch agent's metrics against the agent configuration the instances
get (rendered through modules.mlflow_instance), AWS's against the dimension
sets AWS documents for them, and every dimension value against the resource
it must point at.
"""
from __future__ import annotations

import json
import re
import tomllib

import pytest

from modules.mlflow_instance import (
    AGENT_CONFIG_PATH,
    NGINX_MAIN_PATH,
    BootstrapInputs,
    render,
)
from modules.observability import NGINX_ACCESS_PARSE, QUERIES, SLOW_REQUEST_SECONDS
from modules.settings import SettingsError, load_settings
from tests.support import (
    ROOT,
    SECOND_CONFIG,
    SLACK_CHAT,
    doc_toml_blocks,
    settings_for,
    synth_json,
    terraform,
    terraform_copy,
)

SLACK = SLACK_CHAT
TEAMS = {"platform": "teams", "channel_id": "19%3aabc123%40thread.tacv2",
         "team_id": "00000000-0000-4000-8000-000000000001", "tenant_id": "00000000-0000-4000-8000-000000000002"}

# Dimension sets AWS publishes these metrics under (CloudWatch metrics pages of ELB, EC2 Auto
# Scaling, EC2, RDS and ElastiCache). Only what the stack uses; a new metric must be added here.
LB, TG, ASG, DB, NODE = "LoadBalancer", "TargetGroup", "AutoScalingGroupName", "DBInstanceIdentifier", "CacheClusterId"
AWS_PUBLISHED: dict[tuple[str, str], list[set[str]]] = {
    **{("AWS/ApplicationELB", m): [{LB}] for m in ("RequestCount", "TargetResponseTime", "HTTPCode_ELB_5XX_Count")},
    **{("AWS/ApplicationELB", m): [{TG, LB}] for m in ("HealthyHostCount", "UnHealthyHostCount")},
    ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"): [{LB}, {TG, LB}],
    ("AWS/ApplicationELB", "RequestCountPerTarget"): [{TG}, {TG, LB}],
    ("AWS/EC2", "CPUUtilization"): [{ASG}],
    **{("AWS/AutoScaling", m): [{ASG}] for m in ("GroupInServiceInstances", "GroupDesiredCapacity")},
    **{("AWS/RDS", m): [{DB}] for m in ("CPUUtilization", "DatabaseConnections", "FreeStorageSpace",
                                          "ReadIOPS", "WriteIOPS")},
    **{("AWS/ElastiCache", m): [{NODE}] for m in ("EngineCPUUtilization", "DatabaseMemoryUsagePercentage",
                                                    "Evictions")},
}
# The agent's plugins and the dimensions each adds of its own (CloudWatch agent documentation).
AGENT_PLUGIN_DIMENSIONS = {"mem": set(), "swap": set(), "disk": {"path", "fstype", "device"}}


def res(stack: dict, address: str) -> dict:
    rtype, name = address.split(".")
    return stack["resource"][rtype][name]


def used_metrics(stack: dict) -> list[tuple[str, str, dict[str, str], str]]:
    """(namespace, metric, dimensions, where) of every alarm, alarm metric query and dashboard widget."""
    out = []
    for name, a in stack["resource"]["aws_cloudwatch_metric_alarm"].items():
        if a.get("metric_name"):
            out.append((a["namespace"], a["metric_name"], a.get("dimensions", {}), f"alarm {name}"))
        for q in a.get("metric_query", []):
            if "metric" in q:
                m = q["metric"]
                out.append((m["namespace"], m["metric_name"], m.get("dimensions", {}), f"alarm {name}/{q['id']}"))
    for name, d in stack["resource"]["aws_cloudwatch_dashboard"].items():
        for w in json.loads(d["dashboard_body"])["widgets"]:
            for row in w["properties"].get("metrics", []):
                fields = [f for f in row if not isinstance(f, dict)]
                assert "..." not in fields, "write every widget row out in full"
                ns, metric, *dims = fields
                out.append((ns, metric, dict(zip(dims[::2], dims[1::2])), f"dashboard {name}: {w['properties']['title']}"))
    return out


def instance_namespace(stack: dict) -> str:
    """The one namespace the instance role may put metrics into (modules/security.py)."""
    policy = json.loads(res(stack, "aws_iam_policy.mlflow_cloudwatch_policy")["policy"])
    [stmt] = [s for s in policy["Statement"] if s["Action"] == "cloudwatch:PutMetricData"]
    return stmt["Condition"]["StringEquals"]["cloudwatch:namespace"]


def agent_published(settings, namespace: str) -> dict[tuple[str, str], list[set[str]]]:
    """What the CloudWatch agent on the instances publishes: (namespace, metric) -> dimension sets."""
    files = render(BootstrapInputs(
        region=settings.region, ssm_prefix=settings.ssm_prefix, mlflow_version=settings.mlflow_version,
        db_engine=settings.db_engine, metrics_namespace=namespace,
        log_group_mlflow=settings.log_group_names["mlflow"], log_group_nginx=settings.log_group_names["nginx"],
        log_group_system=settings.log_group_names["system"],
    )).files
    metrics = json.loads(files[AGENT_CONFIG_PATH])["metrics"]
    appended = set(metrics.get("append_dimensions", {}))
    aggregations = [set(a) for a in metrics.get("aggregation_dimensions", [])]
    out = {}
    for plugin, conf in metrics["metrics_collected"].items():
        own = set(AGENT_PLUGIN_DIMENSIONS[plugin])  # KeyError: a plugin this test does not know yet
        if conf.get("drop_device"):
            own.discard("device")
        for m in conf["measurement"]:
            m = m["name"] if isinstance(m, dict) else m
            name = m if m.startswith(f"{plugin}_") else f"{plugin}_{m}"
            out[(metrics["namespace"], name)] = [own | appended, *aggregations]
    return out


def expected_dimension_values(stack: dict) -> dict[str, set[str]]:
    rg = res(stack, "aws_elasticache_replication_group.mlflow")
    return {
        LB: {"${aws_lb.mlflow.arn_suffix}"},
        TG: {"${aws_lb_target_group.mlflow.arn_suffix}"},
        ASG: {"${aws_autoscaling_group.mlflow.name}"},
        DB: {"${aws_db_instance.mlflow.identifier}"},
        NODE: {f"{rg['replication_group_id']}-{i:03d}" for i in range(1, rg["num_cache_clusters"] + 1)},
    }


# --- every metric named is published ------------------------------------------------

@pytest.mark.parametrize("config", [{}, SECOND_CONFIG, {"naming": "hcl", "redis_num_nodes": 1}],
                         ids=["default", "second", "hcl-one-redis-node"])
def test_every_alarm_and_widget_names_a_metric_that_is_published(config):
    s = settings_for(**config)
    stack = synth_json(s)
    namespace = instance_namespace(stack)
    published = {**AWS_PUBLISHED, **agent_published(s, namespace)}
    values = expected_dimension_values(stack)
    used = used_metrics(stack)
    problems = []
    for ns, metric, dims, where in used:
        sets = published.get((ns, metric))
        if sets is None:
            problems.append(f"{where}: nothing publishes {ns} {metric}")
        elif set(dims) not in sets:
            problems.append(f"{where}: {ns} {metric} is published with {sets}, not {sorted(dims)}")
        for key, value in dims.items():
            if value not in values[key]:
                problems.append(f"{where}: {key}={value} is not one of {sorted(values[key])}")
    assert not problems, "\n".join(problems)
    # the instance metrics are really used, in the namespace the instances may write
    assert {(ns, m) for ns, m, _, _ in used} >= {(namespace, "mem_used_percent"), (namespace, "disk_used_percent")}
    # group metrics exist only when the group is told to publish them
    enabled = set(res(stack, "aws_autoscaling_group.mlflow")["enabled_metrics"])
    assert {m for ns, m, _, _ in used if ns == "AWS/AutoScaling"} <= enabled
    # all Redis nodes are watched
    assert {d[NODE] for ns, _, d, _ in used if ns == "AWS/ElastiCache"} == values[NODE]


def test_a_metric_the_agent_does_not_publish_is_caught():
    s = settings_for()
    stack = json.loads(json.dumps(synth_json(s)))
    alarm = res(stack, "aws_cloudwatch_metric_alarm.asg_memory_high")
    ns = instance_namespace(stack)
    published = agent_published(s, ns)
    assert set(alarm["dimensions"]) in published[(ns, "mem_used_percent")]
    assert {"InstanceId"} not in published[(ns, "mem_used_percent")]  # only the ASG roll-up and the full set
    assert (ns, "mem_available_percent") not in published
    assert ("CWAgent", "mem_used_percent") not in published  # the HCL's namespace: not ours


# --- demand scaling -------------------------------------------------------------------

def test_target_tracking_on_requests_and_cpu(default):
    policies = default["resource"]["aws_autoscaling_policy"]
    assert set(policies) == {"requests", "cpu"}
    for p in policies.values():
        assert p["policy_type"] == "TargetTrackingScaling"
        assert p["autoscaling_group_name"] == "${aws_autoscaling_group.mlflow.name}"
        assert p["estimated_instance_warmup"] == 180
        assert p["lifecycle"] == {"create_before_destroy": True}
    req = policies["requests"]["target_tracking_configuration"]
    assert req["predefined_metric_specification"] == {
        "predefined_metric_type": "ALBRequestCountPerTarget",
        "resource_label": "${aws_lb.mlflow.arn_suffix}/${aws_lb_target_group.mlflow.arn_suffix}"}
    assert req["target_value"] == 1500
    # AWS accepts the resource label only for a target group a listener forwards to
    assert policies["requests"]["depends_on"] == ["aws_lb_listener.http"]
    cpu = policies["cpu"]["target_tracking_configuration"]
    assert cpu == {"predefined_metric_specification": {"predefined_metric_type": "ASGAverageCPUUtilization"},
                   "target_value": 60}


def test_scaling_settings_reach_the_group_and_target_group():
    stack = synth_json(settings_for(scaling_requests_per_target=900, scaling_cpu_percent=45,
                                    instance_warmup_seconds=240, health_check_grace_seconds=480,
                                    deregistration_delay_seconds=1800))
    policies = stack["resource"]["aws_autoscaling_policy"]
    assert policies["requests"]["target_tracking_configuration"]["target_value"] == 900
    assert policies["cpu"]["target_tracking_configuration"]["target_value"] == 45
    assert {p["estimated_instance_warmup"] for p in policies.values()} == {240}
    assert res(stack, "aws_autoscaling_group.mlflow")["health_check_grace_period"] == 480
    assert res(stack, "aws_lb_target_group.mlflow")["deregistration_delay"] == "1800"


def test_terraform_leaves_the_desired_capacity_to_scaling(default):
    asg = res(default, "aws_autoscaling_group.mlflow")
    assert asg["desired_capacity"] == 2  # the initial size
    assert asg["lifecycle"]["ignore_changes"] == ["desired_capacity"]
    assert asg["health_check_grace_period"] == 600
    assert res(default, "aws_lb_target_group.mlflow")["deregistration_delay"] == "900"


@pytest.mark.parametrize("overrides,field,value", [
    ({"scaling_requests_per_target": 5}, "scaling_requests_per_target", "5"),
    ({"scaling_cpu_percent": 95}, "scaling_cpu_percent", "95"),
    ({"deregistration_delay_seconds": 3601}, "deregistration_delay_seconds", "3601"),
    ({"instance_warmup_seconds": 900}, "health_check_grace_seconds", "600"),
    ({"db_instance_class": "db.z1d.large"}, "db_instance_class", "db.z1d.large"),
    ({"db_max_connections_alarm": 0}, "db_max_connections_alarm", "0"),
    ({"chat_alerts": {**SLACK, "region": "us-east-1"}}, "chat_alerts.region", "us-east-1"),
    ({"chat_alerts": {**SLACK, "team_id": "workspace"}}, "chat_alerts.team_id", "workspace"),
    ({"chat_alerts": {**TEAMS, "tenant_id": None}}, "chat_alerts.tenant_id", "None"),
    ({"chat_alerts": {**TEAMS, "channel_id": "general"}}, "chat_alerts.channel_id", "general"),
])
def test_bad_observability_settings_are_one_clear_paragraph(overrides, field, value):
    with pytest.raises(SettingsError) as e:
        load_settings(None, **overrides)
    msg = str(e.value)
    assert field in msg and value in msg and "\n" not in msg, msg
    assert "allowed" in msg or "should be" in msg, msg


# --- alarms ---------------------------------------------------------------------------------

def test_the_alarms_the_issue_asks_for(default):
    alarms = default["resource"]["aws_cloudwatch_metric_alarm"]
    assert {"asg_memory_high", "rds_connections", "target_5xx", "healthy_hosts_low", "redis_memory_high"} <= set(alarms)
    assert all(a["alarm_actions"] == a["ok_actions"] == ["${aws_sns_topic.alerts.arn}"] for a in alarms.values())
    low = alarms["healthy_hosts_low"]
    assert (low["comparison_operator"], low["threshold"], low["treat_missing_data"]) == ("LessThanThreshold", 2, "breaching")
    assert alarms["asg_at_max_capacity"]["threshold"] == 4
    assert all(a["actions_enabled"] for a in alarms.values())
    pinned = synth_json(settings_for(asg_min_size=3, asg_desired_capacity=3, asg_max_size=3))
    assert res(pinned, "aws_cloudwatch_metric_alarm.asg_at_max_capacity")["actions_enabled"] is False
    redis = alarms["redis_memory_high"]["metric_query"]
    assert [q["id"] for q in redis if q.get("return_data")] == ["fullest"]
    assert redis[-1]["expression"] == "MAX([m1, m2])"


@pytest.mark.parametrize("engine,db_class,threshold", [
    ("mysql", "db.t3.small", 102),      # 2 GiB x 0.75 / 12582880 = 128 connections; 80% = 102
    ("postgres", "db.t3.small", 134),   # 2 GiB x 0.75 / 9531392 = 168; 80% = 134
    ("postgres", "db.r7g.16xlarge", 4000),  # capped at 5000 by RDS; 80% = 4000
])
def test_db_connections_alarm_follows_the_rds_default_formula(engine, db_class, threshold):
    stack = synth_json(settings_for(db_engine=engine, db_instance_class=db_class))
    alarm = res(stack, "aws_cloudwatch_metric_alarm.rds_connections")
    assert alarm["threshold"] == threshold and alarm["metric_name"] == "DatabaseConnections"
    assert alarm["alarm_name"] == "mlflow-dev-rds-connections-high"
    widget = [w for w in json.loads(res(stack, "aws_cloudwatch_dashboard.mlflow")["dashboard_body"])["widgets"]
              if w["properties"]["title"] == "Database connections"][0]
    assert widget["properties"]["annotations"]["horizontal"][0]["value"] == threshold


def test_db_connections_alarm_setting_wins_and_unknown_classes_need_it():
    stack = synth_json(settings_for(db_instance_class="db.z1d.large", db_max_connections=1000,
                                    db_max_connections_alarm=250))
    assert res(stack, "aws_cloudwatch_metric_alarm.rds_connections")["threshold"] == 250


# --- dashboards, queries, slow log ----------------------------------------------------------

def test_dashboards_cover_the_service_database_and_cache(default):
    dashboards = default["resource"]["aws_cloudwatch_dashboard"]
    assert {d["dashboard_name"] for d in dashboards.values()} == {"mlflow-dev", "mlflow-dev-logs"}
    used = {(ns, m) for ns, m, _, where in used_metrics(default) if where.startswith("dashboard mlflow:")}
    assert used >= {
        ("AWS/ApplicationELB", "RequestCount"), ("AWS/ApplicationELB", "TargetResponseTime"),
        ("AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"), ("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
        ("AWS/ApplicationELB", "HealthyHostCount"), ("AWS/ApplicationELB", "UnHealthyHostCount"),
        ("AWS/AutoScaling", "GroupInServiceInstances"), ("AWS/AutoScaling", "GroupDesiredCapacity"),
        ("AWS/EC2", "CPUUtilization"), ("MLflow/mlflow-dev", "mem_used_percent"),
        ("MLflow/mlflow-dev", "disk_used_percent"), ("AWS/RDS", "CPUUtilization"),
        ("AWS/RDS", "DatabaseConnections"), ("AWS/RDS", "FreeStorageSpace"), ("AWS/RDS", "ReadIOPS"),
        ("AWS/RDS", "WriteIOPS"), ("AWS/ElastiCache", "EngineCPUUtilization"),
        ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage"), ("AWS/ElastiCache", "Evictions"),
    }
    widgets = json.loads(dashboards["mlflow"]["dashboard_body"])["widgets"]
    assert all(w["x"] + w["width"] <= 24 for w in widgets)
    assert len({(w["x"], w["y"]) for w in widgets}) == len(widgets)


def test_saved_queries_read_the_instance_log_groups(default):
    queries = default["resource"]["aws_cloudwatch_query_definition"]
    assert len(queries) >= 4
    assert {"mlflow_errors", "slow_requests", "server_errors_by_path", "auth_failures"} <= set(queries)
    groups = {"/mlflow/dev/mlflow", "/mlflow/dev/nginx", "/mlflow/dev/system"}
    for q in queries.values():
        assert q["name"].startswith("mlflow-dev/") and set(q["log_group_names"]) <= groups
        assert "${" not in q["query_string"] and "%{" not in q["query_string"]
    assert queries["auth_failures"]["log_group_names"] == ["/mlflow/dev/nginx"]
    logs = json.loads(res(default, "aws_cloudwatch_dashboard.logs")["dashboard_body"])["widgets"]
    assert [w["properties"]["title"] for w in logs] == [t for t, _, _ in QUERIES.values()]


def nginx_sample_line(status: int, path: str, request_time: str, user: str = "-") -> str:
    """A line as nginx writes it with the instance's log_format "mlflow" (rendered, not copied)."""
    s = settings_for()
    conf = render(BootstrapInputs(
        region=s.region, ssm_prefix=s.ssm_prefix, mlflow_version=s.mlflow_version, db_engine=s.db_engine,
        metrics_namespace="MLflow/test", log_group_mlflow="/a", log_group_nginx="/b", log_group_system="/c",
    )).files[NGINX_MAIN_PATH]
    fmt = "".join(re.findall(r"'([^']*)'", re.search(r"log_format\s+mlflow\s+(.*?);", conf, re.S).group(1)))
    values = {
        "remote_addr": "10.0.8.15", "remote_user": user, "time_local": "27/Nov/2026:16:20:44 +0000",
        "request": f"POST {path}?run_id=abc HTTP/1.1", "status": str(status), "body_bytes_sent": "17",
        "http_referer": "-", "http_user_agent": "mlflow-python-client/3.17.2 (x; y)",
        "http_x_forwarded_for": "203.0.113.9", "request_time": request_time, "upstream_status": str(status),
        "upstream_response_time": request_time, "upstream_addr": "127.0.0.1:5001",
    }
    return re.sub(r"\$([a-z_]+)", lambda m: values[m.group(1)], fmt)


def test_access_log_parse_matches_the_rendered_nginx_format():
    pattern = re.sub(r"\(\?<", "(?P<", NGINX_ACCESS_PARSE.removeprefix("parse @message /").removesuffix("/"))
    line = nginx_sample_line(503, "/api/2.0/mlflow/runs/log-batch", "2.345", user="alice")
    m = re.search(pattern, line)
    assert m, line
    assert m.groupdict() == {"ip": "10.0.8.15", "user": "alice", "method": "POST",
                             "path": "/api/2.0/mlflow/runs/log-batch", "status": "503", "bytes": "17",
                             "client": "203.0.113.9", "rt": "2.345"}
    assert f"filter rt >= {SLOW_REQUEST_SECONDS}" in QUERIES["slow_requests"][2]


def test_redis_slow_log_goes_to_an_encrypted_log_group(default):
    rg = res(default, "aws_elasticache_replication_group.mlflow")
    assert rg["log_delivery_configuration"] == [{
        "destination": "${aws_cloudwatch_log_group.redis_slow_log.name}", "destination_type": "cloudwatch-logs",
        "log_format": "json", "log_type": "slow-log"}]
    group = res(default, "aws_cloudwatch_log_group.redis_slow_log")
    assert group["name"] == "/mlflow/dev/redis-slow-log" and group["retention_in_days"] == 30
    for name, g in default["resource"]["aws_cloudwatch_log_group"].items():
        assert g["kms_key_id"] == "${aws_kms_key.mlflow.arn}", name


# --- chat -----------------------------------------------------------------------------------

def test_no_chat_configuration_by_default(default):
    assert not any(t.startswith("aws_chatbot_") for t in default["resource"])
    assert "chatbot" not in res(default, "aws_iam_role.mlflow_instance_role")["assume_role_policy"]
    assert len(default["provider"]["aws"]) == 1


@pytest.mark.parametrize("chat,rtype", [(SLACK, "aws_chatbot_slack_channel_configuration"),
                                        (TEAMS, "aws_chatbot_teams_channel_configuration")])
def test_chat_alerts_through_chatbot_in_its_region(chat, rtype):
    stack = synth_json(settings_for(chat_alerts=chat))
    [aliased] = [p for p in stack["provider"]["aws"] if p.get("alias") == "chatbot"]
    assert aliased["region"] == chat.get("region", "us-east-2")
    conf = stack["resource"][rtype]["alerts"]
    assert conf["provider"] == "aws.chatbot"
    assert conf["sns_topic_arns"] == ["${aws_sns_topic.alerts.arn}"]
    assert conf["iam_role_arn"] == "${aws_iam_role.chatbot.arn}"
    assert conf["guardrail_policy_arns"] == ["arn:${data.aws_partition.current.partition}:iam::aws:policy/CloudWatchReadOnlyAccess"]
    assert conf["user_authorization_required"] is True
    trust = json.loads(res(stack, "aws_iam_role.chatbot")["assume_role_policy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "${data.aws_service_principal.chatbot.name}"}
    actions = json.loads(res(stack, "aws_iam_role_policy.chatbot")["policy"])["Statement"][0]["Action"]
    assert all(re.fullmatch(r"cloudwatch:(Describe|Get|List)\*", a) for a in actions)
    assert not any("lambda" in t for t in stack["resource"])


@pytest.mark.terraform
def test_terraform_validate_accepts_chat_alerts(tmp_path):
    terraform_copy(synth_json(settings_for(chat_alerts=SLACK)), tmp_path)
    terraform(tmp_path, "init", "-backend=false", "-input=false", "-no-color")
    out = terraform(tmp_path, "validate", "-json", "-no-color")
    assert json.loads(out.stdout)["valid"] is True, out.stdout


# Applied, re-planned and destroyed on the emulator (Slack) in the domain configuration's cycle
# of tests/emulator/test_deploy.py, with the checks of check_chat_alerts there.


def test_the_chat_example_in_the_docs_is_valid_settings():
    [block] = doc_toml_blocks(ROOT / "docs" / "observability.md")
    stack = synth_json(settings_for(**tomllib.loads(block)))
    assert stack["resource"]["aws_chatbot_slack_channel_configuration"]["alerts"]["slack_team_id"] == "T0123ABCD"
