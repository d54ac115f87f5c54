"""Security group rules, written one way for both rule styles.

Standard stacks give every rule its own ``aws_vpc_security_group_*_rule``
resource. Stacks that adopt the public HCL deployment (naming "hcl") declare
the rules inline on the group instead, as that deployment did: the first apply
then replaces its rules with ours in one update of each group (revoke the old,
authorize the new), so it neither fails on a duplicate permission nor leaves
the HCL's wider rules behind. Mixing both styles on one group makes Terraform
fight itself, so a group uses one style only.

Inline rules cannot reference each other's groups both ways (Terraform would
see a cycle), so an egress rule to a peer group is written to the CIDRs where
that peer lives (``peer_cidrs``) in the inline style.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

from cdktf_cdktf_provider_aws.security_group import SecurityGroup, SecurityGroupEgress, SecurityGroupIngress
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from .base import element


@dataclass(frozen=True)
class Rule:
    name: str
    """Terraform name of the rule resource (standard style)."""
    direction: Literal["ingress", "egress"]
    port: int
    description: str
    cidrs: Sequence[str] = ()
    """IPv4 CIDRs from settings (a counted rule resource, one instance each); or:"""
    cidr: Optional[str] = None
    """One fixed IPv4 CIDR (a single rule resource); or:"""
    peer: Optional[SecurityGroup] = field(default=None, compare=False)
    """The security group on the other side."""
    peer_cidrs: Sequence[str] = ()
    """Inline style only, egress to a peer: the peer's subnets instead of its group."""


def add_rules(scope: Construct, sg: SecurityGroup, rules: Sequence[Rule], *, inline: bool) -> None:
    if inline:
        _inline(sg, rules)
        return
    for r in rules:
        kw: dict = {}
        if r.peer is not None:
            kw["referenced_security_group_id"] = r.peer.id
        elif r.cidr is not None:
            kw["cidr_ipv4"] = r.cidr
        else:
            kw["count"] = len(r.cidrs)
            kw["cidr_ipv4"] = element(list(r.cidrs))
        cls = VpcSecurityGroupIngressRule if r.direction == "ingress" else VpcSecurityGroupEgressRule
        cls(scope, f"{cls.TF_RESOURCE_TYPE}.{r.name}", security_group_id=sg.id, description=r.description,
            ip_protocol="tcp", from_port=r.port, to_port=r.port, **kw)


def _inline(sg: SecurityGroup, rules: Sequence[Rule]) -> None:
    blocks: dict[str, list] = {"ingress": [], "egress": []}
    for r in rules:
        peer_groups: list[str] = []
        cidrs = [r.cidr] if r.cidr is not None else list(r.cidrs)
        if r.peer is not None:
            if r.direction == "egress":
                cidrs = list(r.peer_cidrs)
            else:
                peer_groups = [r.peer.id]
        kw = dict(from_port=r.port, to_port=r.port, protocol="tcp", description=r.description,
                  cidr_blocks=cidrs, security_groups=peer_groups, ipv6_cidr_blocks=[], prefix_list_ids=[],
                  self_attribute=False)
        cls = SecurityGroupIngress if r.direction == "ingress" else SecurityGroupEgress
        blocks[r.direction].append(cls(**kw))
    # Explicit empty lists too: they remove whatever rules the adopted group had.
    sg.put_ingress(blocks["ingress"])
    sg.put_egress(blocks["egress"])
