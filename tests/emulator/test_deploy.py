"""Deploy the whole stack for real, offline: init, plan, apply, re-plan (must be
empty), destroy, with the real terraform CLI and hashicorp/aws provider against
a local moto server (extended by moto_extensions.py), for the default, the
second and the domain configuration (the last with chat alerts to Slack, on
moto_chatbot.py's Chatbot). Then check through boto3 that nothing is left.

Run: .venv/bin/python -m pytest tests/emulator -m emulator -x -q

Deletion protection is turned off here (``deletion_protection=False``) so that
destroy can delete the database and the load balancer; everything else is the
configuration as users get it.
"""
from __future__ import annotations

import json
import time

import pytest

from tests.emulator.harness import Terraform, emulator_settings, tail
from tests.support import DOMAIN_CONFIG, SECOND_CONFIG, SLACK_CHAT, synth_json, terraform_copy

pytestmark = pytest.mark.emulator

CONFIGS = {
    "default": {},
    "second": SECOND_CONFIG,
    # Chat alerts ride on the domain cycle: a cycle of their own cost a minute of CPU per run.
    "domain": {**DOMAIN_CONFIG, "chat_alerts": SLACK_CHAT},
}


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_plan_apply_replan_destroy(config_name, moto_server, tmp_path, record_emulator_result):
    started = time.monotonic()
    s = emulator_settings(CONFIGS[config_name], moto_server)
    synth_started = time.monotonic()
    stack = synth_json(s)
    synth_seconds = time.monotonic() - synth_started
    workdir = tmp_path / "tf"
    terraform_copy(stack, workdir)
    tf = Terraform(workdir)

    tf("init", "init", "-input=false")
    messages = [json.loads(line) for line in tf("plan", "plan", "-input=false", "-json", "-out=tfplan").stdout
                .splitlines() if line.startswith("{")]
    to_create = [m["change"]["resource"]["addr"] for m in messages if m.get("type") == "planned_change"
                 and m["change"]["action"] == "create" and m["change"]["resource"]["resource_type"]
                 and not m["change"]["resource"]["addr"].startswith("data.")]
    # The full plan as JSON (a second load of the provider) only where the secrets check reads it.
    plan_text = tf("show-plan", "show", "-json", "tfplan").stdout if config_name == "default" else ""
    tf.phases.pop("show-plan", None)
    try:
        tf("apply", "apply", "-input=false", "-auto-approve", "tfplan")
        state = tf("state-list", "state", "list").stdout.split()
        tf.phases.pop("state-list")
        managed = [a for a in state if not a.startswith("data.")]
        assert sorted(managed) == sorted(to_create), "apply did not create exactly what the plan said"
        check_deployed(s, moto_server)
        if config_name == "default":
            check_secrets_stay_out(s, moto_server, {
                "synthesized JSON": (workdir / "main.tf.json").read_text(), "plan JSON": plan_text,
                "state": (workdir / "terraform.tfstate").read_text()})
        if s.domain_name:
            check_certificate_validated_by_its_own_records(s, moto_server)
        if s.chat_alerts:
            check_chat_alerts(s, moto_server)

        replan = tf("re-plan", "plan", "-input=false", "-detailed-exitcode", ok=(0, 2))
        if replan.returncode != 0:
            pytest.fail(f"second plan of {config_name} is not empty:\n{tail(replan.stdout)}", pytrace=False)
    finally:
        destroy(tf)
    leftovers = find_leftovers(s, moto_server)
    assert not leftovers, f"left behind after destroy: {json.dumps(leftovers, indent=2, default=str)}"

    record_emulator_result({
        "config": config_name,
        "resources": len(to_create),
        "phases": {"synth": synth_seconds, **tf.phases},
        "total": time.monotonic() - started,
        "moto_rss_mb": moto_server.peak_rss_mb(),
        "terraform_rss_mb": tf.peak_rss_kb / 1024,
    })


def check_deployed(s, moto) -> None:
    """A few things Terraform's success alone does not show."""
    ec2 = moto.client("ec2")
    running = [i for r in ec2.describe_instances(Filters=[
        {"Name": "tag:aws:autoscaling:groupName", "Values": [s.names.asg]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ])["Reservations"] for i in r["Instances"]]
    assert len(running) == s.asg_desired_capacity
    ami = moto.client("ssm").get_parameter(
        Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")["Parameter"]["Value"]
    assert {i["ImageId"] for i in running} == {ami}, "launch template's resolve:ssm: image id not resolved"
    rg = moto.client("elasticache").describe_replication_groups(
        ReplicationGroupId=s.names.replication_group_id)["ReplicationGroups"][0]
    assert len(rg["MemberClusters"]) == s.redis_num_nodes
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [f"{s.prefix}-vpc"]}])["Vpcs"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc[0]["VpcId"]]}])["Subnets"]
    assert len(subnets) == 3 * len(s.azs)
    nats = ec2.describe_nat_gateways(Filters=[{"Name": "state", "Values": ["available", "pending"]}])["NatGateways"]
    assert len(nats) == s.nat_count
    listeners = moto.client("elbv2").describe_listeners(
        LoadBalancerArn=moto.client("elbv2").describe_load_balancers(Names=[f"{s.prefix}-alb"])
        ["LoadBalancers"][0]["LoadBalancerArn"])["Listeners"]
    assert sorted(lst["Port"] for lst in listeners) == ([80, 443] if s.https else [80])
    db = moto.client("rds").describe_db_instances(DBInstanceIdentifier=f"{s.prefix}-db")["DBInstances"][0]
    assert db["Engine"] == s.db_engine and not db["DeletionProtection"]


def destroy(tf: Terraform) -> None:
    tf("destroy", "destroy", "-input=false", "-auto-approve")


def check_secrets_stay_out(s, moto, places: dict[str, str]) -> None:
    """The generated secrets, read back from Parameter Store, appear in neither the JSON, the plan nor the state."""
    ssm = moto.client("ssm")
    secrets = {key: ssm.get_parameter(Name=s.names.ssm[key], WithDecryption=True)["Parameter"]["Value"]
               for key in ("db/password", "mlflow/admin_password", "mlflow/flask_secret_key")}
    assert len(secrets["db/password"]) == 32 and len(secrets["mlflow/flask_secret_key"]) == 64
    for key, value in secrets.items():
        for place, text in places.items():
            assert value not in text, f"{key} found in the {place}"
    planned = {c["address"]: c for c in json.loads(places["plan JSON"])["resource_changes"]}
    assert planned["aws_db_instance.mlflow"]["change"]["after"].get("password") is None
    assert planned["aws_ssm_parameter.db_password"]["change"]["after"].get("value") is None


def check_certificate_validated_by_its_own_records(s, moto) -> None:
    """The emulator issues certificates on a timer whatever DNS says, so the records are checked here:
    the zone holds exactly the record ACM asked for, and the alias points at the load balancer."""
    acm, r53 = moto.client("acm"), moto.client("route53")
    arn = next(c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]
               if c["DomainName"] == s.domain_name)
    options = acm.describe_certificate(CertificateArn=arn)["Certificate"]["DomainValidationOptions"]
    asked = {(o["ResourceRecord"]["Name"].rstrip("."), o["ResourceRecord"]["Type"], o["ResourceRecord"]["Value"])
             for o in options}
    records = r53.list_resource_record_sets(HostedZoneId=s.route53_zone_id)["ResourceRecordSets"]
    present = {(r["Name"].rstrip("."), r["Type"], v["Value"]) for r in records for v in r.get("ResourceRecords", [])}
    assert asked and asked <= present, f"validation records {asked} not in the zone {present}"
    alias = [r for r in records if r["Name"].rstrip(".") == s.domain_name and r["Type"] == "A"]
    lb = moto.client("elbv2").describe_load_balancers(Names=[f"{s.prefix}-alb"])["LoadBalancers"][0]
    assert alias and alias[0]["AliasTarget"]["DNSName"].rstrip(".").lower() == lb["DNSName"].lower()
    listeners = moto.client("elbv2").describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    https = [lst for lst in listeners if lst["Port"] == 443]
    assert https and https[0]["Certificates"][0]["CertificateArn"] == arn


def check_chat_alerts(s, moto) -> None:
    """The one chat configuration: its channel, the alerts topic only, and each user's own
    permissions (user_authorization_required)."""
    chat = s.chat_alerts
    assert chat.platform == "slack", "only Slack is applied on the emulator (Teams: synth and validate)"
    [conf] = moto.client("chatbot").describe_slack_channel_configurations()["SlackChannelConfigurations"]
    topic = next(t["TopicArn"] for t in moto.client("sns").list_topics()["Topics"]
                 if t["TopicArn"].endswith(f":{s.prefix}-alerts"))
    assert conf["SlackChannelId"] == chat.channel_id and conf["SlackTeamId"] == chat.team_id
    assert conf["SnsTopicArns"] == [topic] and conf["UserAuthorizationRequired"] is True


def find_leftovers(s, moto) -> dict[str, list]:
    """Everything the stack could have created that still exists after destroy."""
    ec2, left = moto.client("ec2"), {}

    def check(kind: str, items) -> None:
        items = list(items)
        if items:
            left[kind] = items

    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"]}
    check("vpcs", [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]])
    check("subnets", [n["SubnetId"] for n in ec2.describe_subnets()["Subnets"] if n["VpcId"] not in default_vpcs])
    check("security_groups", [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                              if g["GroupName"] != "default"])
    check("route_tables", [t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]
                           if t["VpcId"] not in default_vpcs])
    check("internet_gateways", [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
                                if not any(a["VpcId"] in default_vpcs for a in g.get("Attachments", []))])
    check("nat_gateways", [n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"]
                           if n["State"] not in ("deleted", "deleting")])
    check("elastic_ips", [a.get("AllocationId") for a in ec2.describe_addresses()["Addresses"]])
    check("vpc_endpoints", [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]
                            if e["State"].lower() not in ("deleted", "deleting")])
    check("instances", [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                        if i["State"]["Name"] not in ("terminated", "shutting-down")])
    check("launch_templates", [t["LaunchTemplateName"] for t in ec2.describe_launch_templates()["LaunchTemplates"]])
    check("key_pairs", [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]])

    rds = moto.client("rds")
    check("db_instances", [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]])
    check("db_subnet_groups", [g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]])
    check("db_parameter_groups", [g["DBParameterGroupName"] for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
                                  if g["DBParameterGroupName"].startswith(s.prefix)])

    ecache = moto.client("elasticache")
    check("replication_groups", [g["ReplicationGroupId"] for g in ecache.describe_replication_groups()["ReplicationGroups"]])
    check("cache_clusters", [c["CacheClusterId"] for c in ecache.describe_cache_clusters()["CacheClusters"]])
    check("cache_subnet_groups", [g["CacheSubnetGroupName"] for g in ecache.describe_cache_subnet_groups()["CacheSubnetGroups"]
                                  if g["CacheSubnetGroupName"].startswith(s.prefix)])
    check("cache_parameter_groups", [g["CacheParameterGroupName"] for g in
                                     ecache.describe_cache_parameter_groups()["CacheParameterGroups"]])

    check("buckets", [b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]])
    check("ssm_parameters", [p["Name"] for p in moto.client("ssm").get_parameters_by_path(
        Path=s.ssm_prefix, Recursive=True)["Parameters"]])
    check("log_groups", [g["logGroupName"] for g in moto.client("logs").describe_log_groups()["logGroups"]])
    check("alarms", [a["AlarmName"] for a in moto.client("cloudwatch").describe_alarms()["MetricAlarms"]])
    check("sns_topics", [t["TopicArn"] for t in moto.client("sns").list_topics()["Topics"]])

    kms = moto.client("kms")
    keys = [kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"] for k in kms.list_keys()["Keys"]]
    check("kms_keys", [k["KeyId"] for k in keys if k["KeyManager"] == "CUSTOMER" and k["KeyState"] != "PendingDeletion"])
    check("kms_aliases", [a["AliasName"] for a in kms.list_aliases()["Aliases"] if a["AliasName"].startswith(f"alias/{s.prefix}")])

    iam = moto.client("iam")
    check("iam_roles", [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(s.prefix)])
    check("iam_policies", [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]])
    check("instance_profiles", [p["InstanceProfileName"] for p in iam.list_instance_profiles()["InstanceProfiles"]])

    elbv2 = moto.client("elbv2")
    check("load_balancers", [b["LoadBalancerName"] for b in elbv2.describe_load_balancers()["LoadBalancers"]])
    check("target_groups", [g["TargetGroupName"] for g in elbv2.describe_target_groups()["TargetGroups"]])

    if s.domain_name:
        check("certificates", [c["CertificateArn"] for c in moto.client("acm").list_certificates()
                               ["CertificateSummaryList"] if c["DomainName"] == s.domain_name])
        check("dns_records", [r["Name"] for r in moto.client("route53").list_resource_record_sets(
            HostedZoneId=s.route53_zone_id)["ResourceRecordSets"] if r["Type"] not in ("NS", "SOA")])

    if s.chat_alerts:
        chatbot = moto.client("chatbot")
        check("chat_configurations", [c["ChatConfigurationArn"] for c in
                                      chatbot.describe_slack_channel_configurations()["SlackChannelConfigurations"]
                                      + chatbot.list_microsoft_teams_channel_configurations()
                                      ["TeamChannelConfigurations"]])

    asg = moto.client("autoscaling")
    check("autoscaling_groups", [g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups()["AutoScalingGroups"]])
    check("asg_notifications", asg.describe_notification_configurations()["NotificationConfigurations"])
    return left
