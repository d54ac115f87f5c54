"""The synthesized stack against the resources guide (../shared/spec) and its wiring."""
from __future__ import annotations

import base64
import json
import re

import pytest

from modules.mlflow import ami_parameter
from tests.support import ROOT, SECOND_CONFIG, settings_for, synth_json

SHARED_SPEC = ROOT.parent / "shared" / "spec" / "resources.tsv"
VENDORED_SPEC = ROOT / "tests" / "spec" / "resources.tsv"


def guide_rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in VENDORED_SPEC.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            module, address, how_many, _ = line.split("\t")
            rows.append((module, address, how_many))
    return rows


ROWS = guide_rows()


def res(stack: dict, address: str) -> dict:
    rtype, name = address.split(".", 1)
    return stack["resource"][rtype][name]


def rules(stack: dict, kind: str, sg: str) -> list[dict]:
    """Rules (ingress/egress) attached to security group `sg` (name)."""
    rtype = f"aws_vpc_security_group_{kind}_rule"
    return [r for r in stack["resource"].get(rtype, {}).values()
            if r["security_group_id"] == f"${{aws_security_group.{sg}.id}}"]


def policy(stack: dict, address: str, attr: str = "policy") -> dict:
    return json.loads(res(stack, address)[attr])


# --- the guide's table ------------------------------------------------------

def test_vendored_table_is_the_guides_table():
    if not SHARED_SPEC.exists():
        pytest.skip("shared/spec is not beside this checkout")
    assert VENDORED_SPEC.read_text() == SHARED_SPEC.read_text()


@pytest.mark.parametrize("module,address,how_many", ROWS, ids=[r[1] for r in ROWS])
def test_guide_row_is_at_its_exact_address(default, second, module, address, how_many):
    rtype, name = address.split(".", 1)
    for stack, azs, nats in ((default, 2, 2), (second, 3, 1)):
        of_type = stack["resource"].get(rtype, {})
        if name == "*":
            assert of_type, f"no {rtype} at all"
            continue
        assert name in of_type, f"{address} missing"
        block = of_type[name]
        if how_many.startswith("count"):
            expected = nats if rtype == "aws_nat_gateway" else azs
            assert block.get("count") == expected, f"{address} count {block.get('count')} != {expected}"
        else:
            assert "count" not in block and "for_each" not in block


@pytest.mark.parametrize("rtype,names", [
    ("aws_route_table", {"public", "private", "database"}),
    ("aws_vpc_endpoint", {"s3", "ec2"}),
    ("aws_cloudwatch_log_group", {"mlflow", "nginx", "system", "vpc_flow_logs", "redis_slow_log"}),
    ("aws_ssm_parameter", {"db_host", "db_port", "db_name", "db_username", "db_password",
                           "cache_endpoint", "cache_port", "artifact_bucket", "allowed_hosts",
                           "mlflow_admin_password", "mlflow_flask_secret_key"}),
])
def test_type_only_rows_have_clear_names(default, rtype, names):
    assert set(default["resource"][rtype]) == names


def test_listeners_http_only_without_certificate_and_https_with_one(default, second):
    assert set(default["resource"]["aws_lb_listener"]) == {"http"}
    assert set(second["resource"]["aws_lb_listener"]) == {"http", "https"}


def test_everything_is_top_level_with_no_hashed_names(default, second):
    for stack in (default, second):
        assert "module" not in stack
        for block in ("resource", "data", "output", "variable"):
            for rtype, items in stack.get(block, {}).items():
                for name in (items if block in ("resource", "data") else [rtype]):
                    assert not re.search(r"_[0-9A-F]{8}$", name), f"hashed name {rtype}.{name}"


def test_private_route_tables_one_per_az_and_single_nat_shared(default, second):
    assert res(default, "aws_route_table.private")["count"] == 2
    assert res(second, "aws_route_table.private")["count"] == 3
    route = res(second, "aws_route_table.private")["route"][0]
    assert route["nat_gateway_id"] == "${element(aws_nat_gateway.main[*].id, count.index)}"


def test_subnet_cidrs_are_derived_from_the_vpc_cidr(default):
    assert res(default, "aws_vpc.main")["cidr_block"] == "10.0.0.0/16"
    assert res(default, "aws_subnet.public")["cidr_block"] == '${element(["10.0.0.0/21", "10.0.8.0/21"], count.index)}'
    assert res(default, "aws_subnet.private")["cidr_block"] == '${element(["10.0.64.0/21", "10.0.72.0/21"], count.index)}'
    assert res(default, "aws_subnet.database")["cidr_block"] == '${element(["10.0.128.0/21", "10.0.136.0/21"], count.index)}'


def test_vpc_flow_logs_go_to_an_encrypted_log_group(default):
    flow = res(default, "aws_flow_log.main")
    assert flow["vpc_id"] == "${aws_vpc.main.id}" and flow["traffic_type"] == "ALL"
    assert flow["log_destination"] == "${aws_cloudwatch_log_group.vpc_flow_logs.arn}"
    assert res(default, "aws_cloudwatch_log_group.vpc_flow_logs")["kms_key_id"] == "${aws_kms_key.mlflow.arn}"
    (stmt,) = policy(default, "aws_iam_role_policy.vpc_flow_logs")["Statement"]
    assert stmt["Resource"] == ["${aws_cloudwatch_log_group.vpc_flow_logs.arn}",
                                "${aws_cloudwatch_log_group.vpc_flow_logs.arn}:*"]


def test_default_security_group_has_no_rules(default):
    sg = res(default, "aws_default_security_group.main")
    assert "ingress" not in sg and "egress" not in sg


def test_s3_gateway_endpoint_serves_the_private_route_tables(default):
    assert res(default, "aws_vpc_endpoint.s3")["route_table_ids"] == "${aws_route_table.private[*].id}"
    ec2 = res(default, "aws_vpc_endpoint.ec2")
    assert ec2["security_group_ids"] == ["${aws_security_group.vpc_endpoints.id}"]


# --- security groups (guide: Security Groups) ----------------------------------

def test_alb_admits_http_and_https_from_the_allowed_cidrs_and_the_instances_only(default):
    ingress = default["resource"]["aws_vpc_security_group_ingress_rule"]
    alb = {n: r for n, r in ingress.items() if r["security_group_id"] == "${aws_security_group.alb.id}"}
    assert set(alb) == {"alb_http", "alb_https", "alb_http_from_instances", "alb_https_from_instances"}
    for name in ("alb_http", "alb_https"):
        assert alb[name]["cidr_ipv4"] == '${element(["0.0.0.0/0"], count.index)}' and alb[name]["count"] == 1
    # internal by default: port forwarding arrives from the instances' subnets
    private = default["resource"]["aws_subnet"]["private"]["cidr_block"].removeprefix("${element(")
    for name in ("alb_http_from_instances", "alb_https_from_instances"):
        assert alb[name]["cidr_ipv4"].removeprefix("${element(") == private
    custom = synth_json(settings_for(alb_allowed_cidrs=["203.0.113.0/24", "198.51.100.7/32"]))
    for name in ("alb_http", "alb_https"):
        r = custom["resource"]["aws_vpc_security_group_ingress_rule"][name]
        assert r["count"] == 2
        assert r["cidr_ipv4"] == '${element(["203.0.113.0/24", "198.51.100.7/32"], count.index)}'


def test_app_admits_80_and_5000_only_from_the_alb(default):
    ingress = rules(default, "ingress", "mlflow_app")
    assert sorted(r["from_port"] for r in ingress) == [80, 5000]
    assert all(r["referenced_security_group_id"] == "${aws_security_group.alb.id}" for r in ingress)
    assert all("cidr_ipv4" not in r for r in ingress)


def test_ssh_is_closed_unless_cidrs_are_given(default):
    assert 22 not in [r["from_port"] for r in rules(default, "ingress", "mlflow_app")]
    opened = synth_json(settings_for(ssh_allowed_cidrs=["192.0.2.0/24"]))
    ssh = [r for r in rules(opened, "ingress", "mlflow_app") if r["from_port"] == 22]
    assert len(ssh) == 1 and ssh[0]["cidr_ipv4"] == '${element(["192.0.2.0/24"], count.index)}'


@pytest.mark.parametrize("config,port", [({}, 3306), (SECOND_CONFIG, 5432)])
def test_database_admits_only_its_engine_port_from_the_app(config, port):
    stack = synth_json(settings_for(**config))
    ingress = rules(stack, "ingress", "database")
    assert [(r["from_port"], r["to_port"]) for r in ingress] == [(port, port)]
    assert ingress[0]["referenced_security_group_id"] == "${aws_security_group.mlflow_app.id}"


def test_redis_admits_only_6379_from_the_app(default):
    ingress = rules(default, "ingress", "elasticache")
    assert [(r["from_port"], r["referenced_security_group_id"]) for r in ingress] == [
        (6379, "${aws_security_group.mlflow_app.id}")]


def test_database_and_redis_groups_have_no_egress(default):
    assert rules(default, "egress", "database") == [] and rules(default, "egress", "elasticache") == []


# --- IAM (guide: IAM Resources) ------------------------------------------------

def test_s3_policy_is_scoped_to_the_artifact_bucket(default):
    doc = policy(default, "aws_iam_policy.mlflow_s3_policy")
    bucket = "arn:${data.aws_partition.current.partition}:s3:::mlflow-dev-artifacts-${random_id.bucket_suffix.hex}"
    assert [s["Resource"] for s in doc["Statement"]] == [bucket, f"{bucket}/*", f"{bucket}/bootstrap/*"]
    assert doc["Statement"][-1]["Effect"] == "Deny"  # bootstrap bundles: read-only for the instances
    assert res(default, "aws_s3_bucket.mlflow_artifacts")["bucket"] == bucket.split(":::")[1]


def test_ssm_policy_is_scoped_to_the_parameter_path(default):
    (stmt,) = policy(default, "aws_iam_policy.mlflow_ssm_policy")["Statement"]
    base = ("arn:${data.aws_partition.current.partition}:ssm:us-east-1:"
            "${data.aws_caller_identity.current.account_id}:parameter/mlflow/dev")
    assert stmt["Resource"] == [base, f"{base}/*"]
    assert set(stmt["Action"]) == {"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"}
    for p in default["resource"]["aws_ssm_parameter"].values():
        assert p["name"].startswith("/mlflow/dev/")


def test_cloudwatch_policy_is_scoped_to_the_three_log_groups(default):
    logs, metrics = policy(default, "aws_iam_policy.mlflow_cloudwatch_policy")["Statement"]
    groups = {r.split(":log-group:")[1].removesuffix(":*") for r in logs["Resource"]}
    assert groups == {"/mlflow/dev/mlflow", "/mlflow/dev/nginx", "/mlflow/dev/system"}
    assert metrics["Resource"] == "*" and metrics["Action"] == "cloudwatch:PutMetricData"
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "MLflow/mlflow-dev"}}


def test_kms_policy_is_scoped_to_the_key(default):
    (stmt,) = policy(default, "aws_iam_policy.mlflow_kms_policy")["Statement"]
    assert stmt["Resource"] == "${aws_kms_key.mlflow.arn}"


def test_no_wildcard_resource_in_instance_policies_except_namespaced_metrics(default):
    for name, p in default["resource"]["aws_iam_policy"].items():
        for stmt in json.loads(p["policy"])["Statement"]:
            if stmt["Resource"] == "*":
                if name == "mlflow_session_manager_policy":  # ssmmessages has no resource type
                    assert all(a.startswith("ssmmessages:") for a in stmt["Action"]), name
                    continue
                assert stmt["Action"] == "cloudwatch:PutMetricData" and "Condition" in stmt, name


def test_role_gets_the_four_policies_and_session_manager(default):
    attachments = {k: a for k, a in default["resource"]["aws_iam_role_policy_attachment"].items()
                   if a["role"] == "${aws_iam_role.mlflow_instance_role.name}"}
    assert set(attachments) == {f"mlflow_{p}_policy_attachment" for p in ("s3", "cloudwatch", "ssm", "kms")} | {
        "mlflow_ssm_managed_policy"}
    for p in ("s3", "cloudwatch", "ssm", "kms"):
        assert attachments[f"mlflow_{p}_policy_attachment"]["policy_arn"] == f"${{aws_iam_policy.mlflow_{p}_policy.arn}}"
    assert res(default, "aws_iam_instance_profile.mlflow_instance_profile")["role"] == \
        "${aws_iam_role.mlflow_instance_role.name}"


def test_kms_key_rotates_and_grants_logs_alarms_and_autoscaling(default):
    key = res(default, "aws_kms_key.mlflow")
    assert key["enable_key_rotation"] is True
    sids = {s["Sid"] for s in json.loads(key["policy"])["Statement"]}
    assert {"CloudWatchLogsEncryptsThisDeploymentsLogGroups", "AlarmsPublishToEncryptedTopic",
            "AutoScalingUsesKeyForEncryptedVolumes", "AutoScalingCreatesGrantsForAwsResources"} <= sids
    assert res(default, "aws_kms_alias.mlflow")["name"] == "alias/mlflow-dev"


# --- data tier ----------------------------------------------------------------

def test_database_is_private_encrypted_backed_up_and_requires_tls(default, second):
    db = res(default, "aws_db_instance.mlflow")
    assert db["publicly_accessible"] is False and db["storage_encrypted"] is True
    assert db["kms_key_id"] == "${aws_kms_key.mlflow.arn}"
    assert db["db_subnet_group_name"] == "${aws_db_subnet_group.database.name}"
    assert db["multi_az"] is True and db["backup_retention_period"] == 7 and db["deletion_protection"] is True
    assert res(default, "aws_db_subnet_group.database")["subnet_ids"] == "${aws_subnet.database[*].id}"
    assert res(default, "aws_db_parameter_group.mlflow")["parameter"] == [
        {"name": "require_secure_transport", "value": "1", "apply_method": "immediate"}]
    assert res(second, "aws_db_parameter_group.mlflow")["parameter"][0]["name"] == "rds.force_ssl"
    assert res(second, "aws_db_instance.mlflow")["engine"] == "postgres"


def test_enhanced_monitoring_role_and_interval(default):
    db = res(default, "aws_db_instance.mlflow")
    assert db["monitoring_interval"] == 60
    assert db["monitoring_role_arn"] == "${aws_iam_role.rds_enhanced_monitoring.arn}"
    off = res(synth_json(settings_for(db_monitoring_interval=0)), "aws_db_instance.mlflow")
    assert off["monitoring_interval"] == 0 and "monitoring_role_arn" not in off


def test_master_password_is_write_only_from_an_ephemeral_value(default):
    db = res(default, "aws_db_instance.mlflow")
    assert "password" not in db and "manage_master_user_password" not in db
    ref = "${ephemeral.aws_secretsmanager_random_password.db_password.random_password}"
    assert db["password_wo"] == ref
    param = res(default, "aws_ssm_parameter.db_password")
    assert param["type"] == "SecureString" and param["value_wo"] == ref and "value" not in param
    assert default["ephemeral"]["aws_secretsmanager_random_password"]["db_password"]["password_length"] == 32


def test_redis_is_encrypted_replicated_in_the_database_subnets(default):
    redis = res(default, "aws_elasticache_replication_group.mlflow")
    assert redis["transit_encryption_enabled"] is True and redis["at_rest_encryption_enabled"] == "true"
    assert redis["num_cache_clusters"] == 2 and redis["automatic_failover_enabled"] is True
    assert redis["security_group_ids"] == ["${aws_security_group.elasticache.id}"]
    assert res(default, "aws_elasticache_subnet_group.mlflow")["subnet_ids"] == "${aws_subnet.database[*].id}"


# --- MLflow service --------------------------------------------------------------

def test_launch_template_imdsv2_encrypted_ebs_and_al2023_resolved_at_plan_time(default):
    lt = res(default, "aws_launch_template.mlflow")
    assert lt["metadata_options"]["http_tokens"] == "required"
    ebs = lt["block_device_mappings"][0]["ebs"]
    assert ebs["encrypted"] == "true" and ebs["kms_key_id"] == "${aws_kms_key.mlflow.arn}"
    # The AMI id itself in the template (not resolve:ssm: at launch), so a new release is a
    # visible, rolled, rollback-able change (issue #15).
    assert lt["image_id"] == "${data.aws_ssm_parameter.ami.insecure_value}"
    assert default["data"]["aws_ssm_parameter"]["ami"]["name"] == (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
    assert lt["vpc_security_group_ids"] == ["${aws_security_group.mlflow_app.id}"]
    assert lt["key_name"] == "${aws_key_pair.mlflow_key.key_name}"


def test_a_pinned_ami_replaces_the_lookup():
    stack = synth_json(settings_for(ami_id="ami-0123456789abcdef0"))
    assert res(stack, "aws_launch_template.mlflow")["image_id"] == "ami-0123456789abcdef0"
    assert "aws_ssm_parameter" not in stack.get("data", {})


def test_graviton_instance_types_get_the_arm64_image():
    assert ami_parameter("t4g.medium").endswith("arm64")
    assert ami_parameter("c7gn.large").endswith("arm64")
    assert ami_parameter("t3.medium").endswith("x86_64") and ami_parameter("g5.xlarge").endswith("x86_64")


def user_data_text(stack: dict, bucket: str) -> str:
    """The launch template's user data as Terraform builds it (base64encode of a join), bucket filled in."""
    expression = res(stack, "aws_launch_template.mlflow")["user_data"]
    inner = expression.removeprefix('${base64encode(join("", [').removesuffix("]))}")
    return "".join(json.loads(f"[{inner.replace('aws_s3_bucket.mlflow_artifacts.bucket', json.dumps(bucket))}]"))


def test_user_data_is_exactly_the_rendered_bootstrap_and_holds_no_secret(default):
    from modules.mlflow_instance import BootstrapInputs, build_bundle, render_user_data
    bundle = build_bundle(BootstrapInputs(
        region="us-east-1", ssm_prefix="/mlflow/dev", log_group_mlflow="/mlflow/dev/mlflow",
        log_group_nginx="/mlflow/dev/nginx", log_group_system="/mlflow/dev/system", mlflow_version="3.17.2",
        db_engine="mysql", metrics_namespace="MLflow/mlflow-dev", mlflow_port=5000, http_port=80, workers=2,
        db_connections=18,  # the default settings' connection budget (modules/db_budget.py)
    ))
    obj = res(default, "aws_s3_object.bootstrap_bundle")
    assert base64.b64decode(obj["content_base64"]) == bundle.data and obj["key"] == bundle.key
    text = user_data_text(default, "mlflow-dev-artifacts-0a1b2c3d")
    assert text == render_user_data("mlflow-dev-artifacts-0a1b2c3d", bundle.key, bundle.sha256, "us-east-1")
    assert "random_password" not in text and "${ephemeral" not in text


def test_asg_runs_in_private_subnets_with_elb_health_and_instance_refresh(default):
    asg = res(default, "aws_autoscaling_group.mlflow")
    assert asg["vpc_zone_identifier"] == "${aws_subnet.private[*].id}"
    assert asg["health_check_type"] == "ELB"
    assert asg["target_group_arns"] == ["${aws_lb_target_group.mlflow.arn}"]
    assert asg["instance_refresh"]["strategy"] == "Rolling"
    assert asg["launch_template"]["version"] == "${aws_launch_template.mlflow.latest_version}"
    assert (asg["min_size"], asg["desired_capacity"], asg["max_size"]) == (2, 2, 4)


def test_mlflow_version_change_changes_the_launch_template():
    a, b = synth_json(settings_for()), synth_json(settings_for(mlflow_version="3.16.1"))
    key = res(b, "aws_s3_object.bootstrap_bundle")["key"]
    assert key != res(a, "aws_s3_object.bootstrap_bundle")["key"]
    assert user_data_text(a, "bucket") != user_data_text(b, "bucket") and key in user_data_text(b, "bucket")


def test_alb_internal_in_private_subnets_drops_invalid_headers_and_logs(default):
    lb = res(default, "aws_lb.mlflow")
    assert lb["internal"] is True and lb["subnets"] == "${aws_subnet.private[*].id}"
    assert lb["drop_invalid_header_fields"] is True
    assert lb["access_logs"]["bucket"] == "${aws_s3_bucket.alb_logs.id}"
    assert lb["security_groups"] == ["${aws_security_group.alb.id}"]


def test_target_group_health_checks_mlflow_through_nginx(default):
    hc = res(default, "aws_lb_target_group.mlflow")["health_check"]
    assert hc["path"] == "/health" and hc["matcher"] == "200" and hc["port"] == "traffic-port"
    assert res(default, "aws_lb_target_group.mlflow")["port"] == 80


def test_https_uses_tls13_policy_and_http_redirects(second):
    https = res(second, "aws_lb_listener.https")
    assert https["ssl_policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https["certificate_arn"] == SECOND_CONFIG["certificate_arn"]
    http = res(second, "aws_lb_listener.http")["default_action"][0]
    assert http["type"] == "redirect" and http["redirect"]["protocol"] == "HTTPS"


def test_buckets_private_encrypted_owner_enforced_tls_only(default):
    for name in ("mlflow_artifacts", "alb_logs"):
        pab = res(default, f"aws_s3_bucket_public_access_block.{name}")
        assert all(pab[k] is True for k in ("block_public_acls", "block_public_policy",
                                            "ignore_public_acls", "restrict_public_buckets"))
        assert res(default, f"aws_s3_bucket_ownership_controls.{name}")["rule"]["object_ownership"] == \
            "BucketOwnerEnforced"
        stmts = policy(default, f"aws_s3_bucket_policy.{name}")["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in stmts)
    sse = res(default, "aws_s3_bucket_server_side_encryption_configuration.mlflow_artifacts")["rule"][0]
    assert sse["apply_server_side_encryption_by_default"] == {
        "sse_algorithm": "aws:kms", "kms_master_key_id": "${aws_kms_key.mlflow.arn}"}
    # ALB access logs cannot use a customer managed key.
    logs_sse = res(default, "aws_s3_bucket_server_side_encryption_configuration.alb_logs")["rule"][0]
    assert logs_sse["apply_server_side_encryption_by_default"] == {"sse_algorithm": "AES256"}
    assert res(default, "aws_s3_bucket_versioning.mlflow_artifacts")["versioning_configuration"]["status"] == \
        "Enabled"


def test_logging_waits_for_the_log_bucket_policy(default):
    # S3 and ELB check the target bucket's policy when logging is switched on.
    for address in ("aws_s3_bucket_logging.mlflow_artifacts", "aws_lb.mlflow"):
        assert res(default, address)["depends_on"] == ["aws_s3_bucket_policy.alb_logs"], address


def test_artifact_bucket_access_is_logged_into_the_log_bucket(default):
    logging = res(default, "aws_s3_bucket_logging.mlflow_artifacts")
    assert logging["target_bucket"] == "${aws_s3_bucket.alb_logs.id}"
    stmts = policy(default, "aws_s3_bucket_policy.alb_logs")["Statement"]
    (writer,) = [st for st in stmts if st.get("Principal") == {
        "Service": "${data.aws_service_principal.logging_s3.name}"}]
    assert writer["Condition"]["ArnLike"] == {"aws:SourceArn": "${aws_s3_bucket.mlflow_artifacts.arn}"}


def test_waf_is_opt_in_with_managed_rules_and_large_bodies_counted_not_blocked(default):
    assert "aws_wafv2_web_acl" not in default["resource"]
    stack = synth_json(settings_for(waf=True))
    acl = res(stack, "aws_wafv2_web_acl.mlflow")
    rules = json.loads(acl["rule_json"])
    assert {r["Name"] for r in rules} == {"AWSManagedRulesAmazonIpReputationList",
                                          "AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesCommonRuleSet"}
    common = [r for r in rules if r["Name"] == "AWSManagedRulesCommonRuleSet"][0]
    assert common["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"] == [
        {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    assert res(stack, "aws_wafv2_web_acl_association.mlflow")["resource_arn"] == "${aws_lb.mlflow.arn}"


def test_buckets_are_only_force_destroyed_without_deletion_protection(default):
    assert res(default, "aws_s3_bucket.mlflow_artifacts")["force_destroy"] is False
    loose = synth_json(settings_for(deletion_protection=False))
    assert res(loose, "aws_s3_bucket.alb_logs")["force_destroy"] is True
    assert res(loose, "aws_db_instance.mlflow")["skip_final_snapshot"] is True


def test_log_groups_encrypted_with_retention(default):
    for g in default["resource"]["aws_cloudwatch_log_group"].values():
        assert g["kms_key_id"] == "${aws_kms_key.mlflow.arn}" and g["retention_in_days"] == 30


# --- alerting & bootstrap ---------------------------------------------------------

def test_alerts_topic_encrypted_with_email_subscriptions_asg_notifications_and_alarms():
    stack = synth_json(settings_for(alert_emails=["ops@example.com", "ml@example.com"]))
    assert res(stack, "aws_sns_topic.alerts")["kms_master_key_id"] == "${aws_kms_key.mlflow.key_id}"
    sub = res(stack, "aws_sns_topic_subscription.email")
    assert sub["count"] == 2 and sub["protocol"] == "email"
    assert res(stack, "aws_autoscaling_notification.mlflow")["group_names"] == ["${aws_autoscaling_group.mlflow.name}"]
    alarms = stack["resource"]["aws_cloudwatch_metric_alarm"]
    # exactly the alarms docs/observability.md documents
    documented = set(re.findall(r"^\| `(\w+)`", (ROOT / "docs" / "observability.md").read_text().split("| alarm |")[1]
                                .split("\n\n")[0], re.M))
    documented |= {"rds_free_storage_low"}  # shares a row with rds_cpu_high
    assert set(alarms) == documented
    assert all(a["alarm_actions"] == ["${aws_sns_topic.alerts.arn}"] for a in alarms.values())


def test_no_email_subscription_without_addresses(default):
    assert "aws_sns_topic_subscription" not in default["resource"]


def test_key_pair_public_key_comes_from_settings_or_a_required_variable(default):
    assert res(default, "aws_key_pair.mlflow_key")["public_key"] == "${var.ssh_public_key}"
    assert "default" not in default["variable"]["ssh_public_key"]
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBkV0xCw0Lq1yTqvYzMHOpXpCwQ5VfQn0zwv9Wg2cZ7A ops@example"
    stack = synth_json(settings_for(ssh_public_key=key))
    assert res(stack, "aws_key_pair.mlflow_key")["public_key"] == key
    assert "variable" not in stack


def test_bucket_suffix_is_random_id(default):
    assert res(default, "random_id.bucket_suffix") == {"byte_length": 4}


def test_outputs(default, second):
    assert set(default["output"]) == {"tracking_url", "alb_dns_name", "artifact_bucket", "db_endpoint", "sns_topic_arn",
                                      "port_forward_command"}
    assert default["output"]["tracking_url"]["value"] == "http://${aws_lb.mlflow.dns_name}"
    assert second["output"]["tracking_url"]["value"] == "https://${aws_lb.mlflow.dns_name}"


def test_tags_merged_from_one_place():
    stack = synth_json(settings_for(tags={"Team": "ml-platform"}))
    tags = stack["provider"]["aws"][0]["default_tags"][0]["tags"]
    assert tags == {"Project": "mlflow", "Environment": "dev", "ManagedBy": "cdktf", "Team": "ml-platform"}


def test_resource_names_carry_the_environment():
    stack = synth_json(settings_for(environment="prod"))
    assert res(stack, "aws_lb.mlflow")["name"] == "mlflow-prod-alb"
    assert res(stack, "aws_db_instance.mlflow")["identifier"] == "mlflow-prod-db"


# --- change safety (issue #15; docs/change-safety.md) ---------------------------------------------

PROTECTED = {
    "aws_db_instance.mlflow", "aws_s3_bucket.mlflow_artifacts", "aws_kms_key.mlflow",
    "aws_elasticache_replication_group.mlflow", "aws_vpc.main",
    "aws_subnet.public", "aws_subnet.private", "aws_subnet.database",
}


def _prevent_destroy(stack: dict) -> set[str]:
    return {f"{t}.{n}" for t, named in stack["resource"].items() for n, r in named.items()
            if r.get("lifecycle", {}).get("prevent_destroy")}


def test_with_deletion_protection_exactly_the_data_bearing_resources_refuse_destruction(default):
    assert _prevent_destroy(default) == PROTECTED


def test_without_deletion_protection_nothing_refuses_destruction():
    assert _prevent_destroy(synth_json(settings_for(deletion_protection=False))) == set()


def test_redis_keeps_a_final_snapshot_only_with_deletion_protection(default):
    redis = res(default, "aws_elasticache_replication_group.mlflow")
    assert redis["final_snapshot_identifier"] == "mlflow-dev-redis-final-${random_id.bucket_suffix.hex}"
    loose = res(synth_json(settings_for(deletion_protection=False)), "aws_elasticache_replication_group.mlflow")
    assert "final_snapshot_identifier" not in loose


def test_engine_upgrades_are_permitted_and_wait_for_the_window_by_default(default):
    db, redis = res(default, "aws_db_instance.mlflow"), res(default, "aws_elasticache_replication_group.mlflow")
    assert db["allow_major_version_upgrade"] is True
    assert db["apply_immediately"] is False and redis["apply_immediately"] is False
    now = synth_json(settings_for(apply_immediately=True))
    assert res(now, "aws_db_instance.mlflow")["apply_immediately"] is True
    assert res(now, "aws_elasticache_replication_group.mlflow")["apply_immediately"] is True


def test_an_old_parameter_group_still_in_use_until_the_window_is_forgotten_not_deleted(default):
    assert res(default, "aws_db_parameter_group.mlflow")["skip_destroy"] is True
    now = synth_json(settings_for(apply_immediately=True))
    assert res(now, "aws_db_parameter_group.mlflow")["skip_destroy"] is False


def test_a_snapshot_restore_is_read_only_at_creation():
    db = res(synth_json(settings_for(environment="restored", db_snapshot_identifier="mlflow-dev-db-final-1a2b")),
             "aws_db_instance.mlflow")
    assert db["snapshot_identifier"] == "mlflow-dev-db-final-1a2b"
    # Read at creation only; and a restore keeps the snapshot's key, which is not replanned.
    assert {"snapshot_identifier", "kms_key_id"} <= set(db["lifecycle"]["ignore_changes"])
    assert "ignore_changes" not in res(synth_json(settings_for()), "aws_db_instance.mlflow").get("lifecycle", {})


def test_user_tags_are_on_the_group_and_never_in_the_launch_template():
    stack = synth_json(settings_for(tags={"CostCenter": "ml"}))
    lt = res(stack, "aws_launch_template.mlflow")
    for spec in lt["tag_specifications"]:
        assert set(spec["tags"]) == {"Project", "Environment", "ManagedBy", "Name"}
    group = res(stack, "aws_autoscaling_group.mlflow")
    assert {"key": "CostCenter", "value": "ml", "propagate_at_launch": True} in group["tag"]
    assert res(stack, "aws_launch_template.mlflow") == res(synth_json(settings_for()), "aws_launch_template.mlflow")


def test_instance_refresh_rolls_back_by_itself(default):
    prefs = res(default, "aws_autoscaling_group.mlflow")["instance_refresh"]["preferences"]
    assert prefs["auto_rollback"] is True and prefs["min_healthy_percentage"] == 50


def test_a_new_auth_secrets_version_rolls_the_instances_after_the_secrets_are_written(default):
    bumped = synth_json(settings_for(mlflow_auth_secrets_version=2))
    assert res(bumped, "aws_launch_template.mlflow")["user_data"] != res(default, "aws_launch_template.mlflow")["user_data"]
    assert set(res(default, "aws_s3_object.bootstrap_bundle")["depends_on"]) == {
        "aws_ssm_parameter.mlflow_admin_password", "aws_ssm_parameter.mlflow_flask_secret_key"}
