"""The load balancer's exposure and TLS (docs/access.md): internal by default, HTTPS from a
domain name, public plain HTTP only when explicitly allowed."""
from __future__ import annotations

import pytest

from modules.settings import SettingsError
from tests.support import DOMAIN_CONFIG, run_main, settings_for, synth_json

DOMAIN = {k: DOMAIN_CONFIG[k] for k in ("domain_name", "route53_zone_id")}


def res(stack: dict, address: str) -> dict:
    rtype, name = address.split(".")
    return stack["resource"][rtype][name]


@pytest.fixture(scope="module")
def domain() -> dict:
    return synth_json(settings_for(**DOMAIN_CONFIG))


def test_default_load_balancer_is_internal_with_a_plain_http_listener_inside_the_vpc(default):
    lb = res(default, "aws_lb.mlflow")
    assert lb["internal"] is True and lb["subnets"] == "${aws_subnet.private[*].id}"
    assert set(default["resource"]["aws_lb_listener"]) == {"http"}
    assert res(default, "aws_lb_listener.http")["default_action"][0]["type"] == "forward"
    assert "aws_acm_certificate" not in default["resource"]


def test_port_forward_command_targets_the_internal_load_balancer_through_an_instance(default):
    command = default["output"]["port_forward_command"]["value"]
    assert command.startswith("aws ssm start-session --region us-east-1 --target $(aws autoscaling ")
    assert "--document-name AWS-StartPortForwardingSessionToRemoteHost" in command
    assert '"host":["${aws_lb.mlflow.dns_name}"],"portNumber":["80"],"localPortNumber":["8080"]' in command
    assert "--auto-scaling-group-names ${aws_autoscaling_group.mlflow.name}" in command


def test_instances_may_reach_the_internal_load_balancer_for_port_forwarding(default):
    egress = default["resource"]["aws_vpc_security_group_egress_rule"]["app_to_alb_http"]
    assert egress["security_group_id"] == "${aws_security_group.mlflow_app.id}"
    assert egress["referenced_security_group_id"] == "${aws_security_group.alb.id}"
    assert egress["from_port"] == egress["to_port"] == 80


def test_internet_facing_without_tls_is_refused_naming_the_way_out():
    with pytest.raises(SettingsError) as e:
        settings_for(alb_internet_facing=True)
    message = str(e.value)
    assert "alb_internet_facing: True is not allowed" in message
    assert "domain_name" in message and "allow_public_plain_http = true" in message
    assert "\n" not in message


@pytest.mark.parametrize("bad, field", [
    ({"allow_public_plain_http": True}, "allow_public_plain_http"),
    ({"domain_name": "mlflow.example.com"}, "domain_name/route53_zone_id"),
    ({**DOMAIN, "certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc"}, "certificate_arn"),
    ({**DOMAIN, "alb_internet_facing": True, "allow_public_plain_http": True}, "allow_public_plain_http"),
])
def test_contradictory_edge_settings_are_refused(bad, field):
    with pytest.raises(SettingsError, match=f"{field}: .* is not allowed"):
        settings_for(**bad)


def test_public_plain_http_is_an_explicit_choice_with_a_synth_warning(tmp_path):
    stack = synth_json(settings_for(alb_internet_facing=True, allow_public_plain_http=True))
    lb = res(stack, "aws_lb.mlflow")
    assert lb["internal"] is False and lb["subnets"] == "${aws_subnet.public[*].id}"
    assert res(stack, "aws_lb_listener.http")["default_action"][0]["type"] == "forward"
    assert "port_forward_command" not in stack["output"]
    run = run_main(tmp_path, {"dev.toml": "alb_internet_facing = true\nallow_public_plain_http = true\n"})
    assert run.returncode == 0, run.stderr
    assert "allow_public_plain_http = true" in run.stdout + run.stderr
    assert "clear text" in run.stdout + run.stderr


def test_a_domain_gets_a_dns_validated_certificate_an_alias_and_https(domain):
    cert = res(domain, "aws_acm_certificate.mlflow")
    assert cert["domain_name"] == "mlflow.example.com" and cert["validation_method"] == "DNS"
    record = res(domain, "aws_route53_record.certificate_validation")
    option = "tolist(aws_acm_certificate.mlflow.domain_validation_options)[0]"
    assert record["name"] == f"${{{option}.resource_record_name}}"
    assert record["type"] == f"${{{option}.resource_record_type}}"
    assert record["records"] == [f"${{{option}.resource_record_value}}"]
    assert record["zone_id"] == DOMAIN["route53_zone_id"]
    validation = res(domain, "aws_acm_certificate_validation.mlflow")
    assert validation["validation_record_fqdns"] == ["${aws_route53_record.certificate_validation.fqdn}"]
    alias = res(domain, "aws_route53_record.mlflow")
    assert alias["type"] == "A" and alias["name"] == "mlflow.example.com"
    assert alias["alias"]["name"] == "${aws_lb.mlflow.dns_name}"
    assert alias["alias"]["zone_id"] == "${aws_lb.mlflow.zone_id}"
    https = res(domain, "aws_lb_listener.https")
    assert https["certificate_arn"] == "${aws_acm_certificate_validation.mlflow.certificate_arn}"
    assert https["ssl_policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    http = res(domain, "aws_lb_listener.http")["default_action"][0]
    assert http["type"] == "redirect" and http["redirect"]["protocol"] == "HTTPS"
    assert domain["output"]["tracking_url"]["value"] == "https://mlflow.example.com"
    assert res(domain, "aws_lb.mlflow")["internal"] is True, "a domain must not make the load balancer public"
    hosts = res(domain, "aws_ssm_parameter.allowed_hosts")["value"]
    assert hosts.split(",")[0] == "mlflow.example.com" and "${aws_lb.mlflow.dns_name}" in hosts
