"""The load balancer's listeners and, optionally, its certificate and DNS name.

TLS comes from one of two places:

* ``domain_name`` + ``route53_zone_id``: an ACM certificate validated by DNS
  (``aws_acm_certificate.mlflow``, ``aws_route53_record.certificate_validation``,
  ``aws_acm_certificate_validation.mlflow``) and an alias A record
  (``aws_route53_record.mlflow``) for the load balancer;
* ``certificate_arn``: a certificate you bring.

With TLS, ``aws_lb_listener.https`` serves (TLS 1.3 policy) and
``aws_lb_listener.http`` only redirects to it. Without TLS, ``aws_lb_listener.http``
forwards: on an internal load balancer, or on a public one only with
``allow_public_plain_http`` (settings enforce that).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cdktf_cdktf_provider_aws.acm_certificate import AcmCertificate
from cdktf_cdktf_provider_aws.acm_certificate_validation import AcmCertificateValidation
from cdktf_cdktf_provider_aws.lb import Lb
from cdktf_cdktf_provider_aws.lb_listener import (
    LbListener,
    LbListenerDefaultAction,
    LbListenerDefaultActionRedirect,
)
from cdktf_cdktf_provider_aws.lb_target_group import LbTargetGroup
from cdktf_cdktf_provider_aws.route53_record import Route53Record, Route53RecordAlias
from constructs import Construct

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@dataclass(frozen=True)
class EdgeProps:
    prefix: str
    """Name tags."""
    alb: Lb
    """The load balancer the listeners belong to."""
    target_group: LbTargetGroup
    """Where requests go."""
    certificate_arn: Optional[str] = None
    """A certificate you bring (default none)."""
    domain_name: Optional[str] = None
    """DNS name of MLflow; with route53_zone_id the stack makes and validates its certificate (default none)."""
    route53_zone_id: Optional[str] = None
    """Hosted zone of domain_name, which must be able to hold the validation record (default none)."""


class Edge(Construct):
    """Listeners, certificate and DNS name of the load balancer."""

    def __init__(self, scope: Construct, id: str, props: EdgeProps):
        super().__init__(scope, id)
        p = props
        certificate_arn = p.certificate_arn
        if p.domain_name:
            cert = AcmCertificate(
                self, "aws_acm_certificate.mlflow",
                domain_name=p.domain_name,
                validation_method="DNS",
                lifecycle={"create_before_destroy": True},
                tags={"Name": f"{p.prefix}-mlflow"},
            )
            # One domain, so one validation option: its record, written as ACM asks.
            option = "tolist(aws_acm_certificate.mlflow.domain_validation_options)[0]"
            record = Route53Record(
                self, "aws_route53_record.certificate_validation",
                zone_id=p.route53_zone_id,
                name=f"${{{option}.resource_record_name}}",
                type=f"${{{option}.resource_record_type}}",
                records=[f"${{{option}.resource_record_value}}"],
                ttl=300,
                allow_overwrite=True,
            )
            validation = AcmCertificateValidation(
                self, "aws_acm_certificate_validation.mlflow",
                certificate_arn=cert.arn,
                validation_record_fqdns=[record.fqdn],
            )
            Route53Record(
                self, "aws_route53_record.mlflow",
                zone_id=p.route53_zone_id,
                name=p.domain_name,
                type="A",
                alias=Route53RecordAlias(name=p.alb.dns_name, zone_id=p.alb.zone_id, evaluate_target_health=True),
            )
            certificate_arn = validation.certificate_arn

        forward = [LbListenerDefaultAction(type="forward", target_group_arn=p.target_group.arn)]
        if certificate_arn:
            LbListener(
                self, "aws_lb_listener.https",
                load_balancer_arn=p.alb.arn, port=443, protocol="HTTPS",
                ssl_policy=TLS_POLICY, certificate_arn=certificate_arn,
                default_action=forward,
            )
            LbListener(
                self, "aws_lb_listener.http",
                load_balancer_arn=p.alb.arn, port=80, protocol="HTTP",
                default_action=[LbListenerDefaultAction(
                    type="redirect",
                    redirect=LbListenerDefaultActionRedirect(port="443", protocol="HTTPS", status_code="HTTP_301"),
                )],
            )
        else:
            LbListener(
                self, "aws_lb_listener.http",
                load_balancer_arn=p.alb.arn, port=80, protocol="HTTP",
                default_action=forward,
            )

        # Typed outputs.
        self.https: bool = bool(certificate_arn)
        self.host: str = p.domain_name or p.alb.dns_name
        self.tracking_url: str = f"{'https' if self.https else 'http'}://{self.host}"
