"""The stack class and the one naming mechanism of the whole app.

Every Terraform element is named by its construct id: a resource created as
``SecurityGroup(self, "aws_security_group.alb", ...)`` in any module synthesizes to
``aws_security_group.alb`` at the top level of the JSON, never a hashed name:
the construct id is the address.
Two elements with the same address, or a name changed behind our back with
``override_logical_id``, fail the synth (``AddressError``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
import re
from typing import Any, Sequence

import jsii
from cdktf import (
    TerraformDataSource,
    TerraformElement,
    TerraformLocal,
    TerraformOutput,
    TerraformProvider,
    TerraformResource,
    TerraformStack,
    TerraformVariable,
    Token,
)
from constructs import Construct, IValidation

_TF_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]*$")


class AddressError(RuntimeError):
    """Two elements share a Terraform address, or one escaped the naming scheme."""


def terraform_name(element: Any) -> str:
    """The Terraform name of an element, from its construct id.

    Resources and data sources are created with their address as construct id
    (``Vpc(self, "aws_vpc.main")``), so ``grep aws_vpc.main`` finds the line;
    outputs and variables with their bare name (``"tracking_url"``).
    """
    cid = element.node.id
    rtype = getattr(element, "terraform_resource_type", None)
    if isinstance(element, (TerraformResource, TerraformDataSource)):
        prefix, dot, name = cid.partition(".")
        if not dot or prefix != rtype:
            raise AddressError(f"construct id {cid!r} must be '{rtype}.<name>' for a {rtype}")
    else:
        name = cid
    if not _TF_NAME.match(name):
        raise AddressError(f"construct id {cid!r}: {name!r} is not a valid Terraform name")
    return name


def address_of(element: TerraformElement) -> str:
    """Terraform address of an element (``aws_vpc.main``, ``data.x.y``, ``output.z``)."""
    name = terraform_name(element)
    if isinstance(element, TerraformResource):
        return f"{element.terraform_resource_type}.{name}"
    if isinstance(element, TerraformDataSource):
        return f"data.{element.terraform_resource_type}.{name}"
    if isinstance(element, TerraformOutput):
        return f"output.{name}"
    if isinstance(element, TerraformVariable):
        return f"var.{name}"
    if isinstance(element, TerraformLocal):
        return f"local.{name}"
    return f"{type(element).__name__}.{name}"


@jsii.implements(IValidation)
class _AddressGuard:
    def __init__(self, stack: "AddressedStack"):
        self._stack = stack

    def validate(self) -> list[str]:
        return self._stack.address_problems()


class AddressedStack(TerraformStack):
    """A TerraformStack whose element names are their construct ids."""

    def __init__(self, scope: Construct, id: str):
        super().__init__(scope, id)
        self._ephemerals: set[str] = set()
        self._blocks: set[str] = set()
        self.node.add_validation(_AddressGuard(self))

    # Called by cdktf the first time an element's name is read.
    def _allocate_logical_id(self, tf_element: Any) -> str:
        return terraform_name(tf_element)

    def add_ephemeral(self, resource_type: str, name: str, config: dict[str, Any]) -> str:
        """Declare ``ephemeral "<type>" "<name>"`` and return its address.

        The app's only escape hatch: cdktf 0.21 has no construct for ephemeral
        blocks (Terraform 1.10+), so they go in as a stack override.
        """
        if not _TF_NAME.match(name):
            raise AddressError(f"ephemeral name {name!r} is not a valid Terraform name")
        address = f"ephemeral.{resource_type}.{name}"
        if address in self._ephemerals:
            raise AddressError(f"{address} is defined twice")
        self._ephemerals.add(address)
        self.add_override(address, config)
        return address

    def add_blocks(self, kind: str, blocks: list[dict[str, Any]]) -> None:
        """Top-level ``moved``, ``removed`` or ``import`` blocks, also set as a stack override.

        cdktf 0.21 cannot write moved/removed blocks with module addresses or
        instance keys, nor removed blocks at all; this is the same escape hatch
        as add_ephemeral, and the only other one.
        """
        if kind not in ("moved", "removed", "import"):
            raise ValueError(f"unsupported block kind {kind!r}")
        if kind in self._blocks:
            raise AddressError(f"{kind} blocks are set twice")
        self._blocks.add(kind)
        self.add_override(kind, blocks)

    def elements(self) -> list[TerraformElement]:
        return [c for c in self.node.find_all() if isinstance(c, TerraformElement)]

    def address_problems(self) -> list[str]:
        problems: list[str] = []
        seen: dict[str, str] = {}
        for el in self.elements():
            if isinstance(el, TerraformProvider):
                continue  # providers are keyed by type and alias, not by name
            try:
                address = address_of(el)
            except AddressError as e:
                problems.append(f"{el.node.path}: {e}")
                continue
            if el.friendly_unique_id != terraform_name(el):
                problems.append(
                    f"{el.node.path}: Terraform name {el.friendly_unique_id!r} does not come from its "
                    f"construct id {el.node.id!r}; name elements only by construct id"
                )
            if address in seen:
                problems.append(f"{address} is defined twice: {seen[address]} and {el.node.path}")
            seen[address] = el.node.path
        return problems


def splat(resource: TerraformResource, attribute: str) -> list[str]:
    """``resource[*].attribute`` of a counted resource, as a list token."""
    return Token.as_list(f"${{{address_of(resource)}[*].{attribute}}}")


def indexed(resource: TerraformResource, attribute: str, index: int | str = "count.index") -> str:
    """``resource[index].attribute``; index is an int or the expression ``count.index``."""
    return f"${{{address_of(resource)}[{index}].{attribute}}}"


def element(values: Sequence[str], index: str = "count.index") -> str:
    """``element(["a", "b"], count.index)``: the value of one counted instance."""
    return "${element(%s, %s)}" % (json.dumps([literal(v) for v in values]), index)


@dataclass(frozen=True)
class KmsKeyRef:
    """One KMS key as the props of the modules take it (``Security.kms_key``)."""

    arn: str
    """The key's ARN (encryption settings that take an ARN: S3, EBS, RDS, log groups)."""
    key_id: str
    """The key's id (settings that take a key id: SSM SecureStrings, SNS)."""


def policy_document(*statements: dict[str, Any]) -> str:
    """An IAM/resource policy document (JSON text) from statements."""
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


def assume_role_policy(service: str, source_account: str | None = None) -> str:
    """Trust policy letting one AWS service assume a role.

    ``source_account`` limits it to calls on behalf of our account (confused deputy); only EC2,
    whose instances assume the role themselves, goes without it.
    """
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if source_account is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    return policy_document(statement)


def service_principal(scope: Construct, service: str) -> str:
    """Name of an AWS service principal in the stack's partition (``ec2`` -> ``ec2.amazonaws.com``).

    From the provider's ``data.aws_service_principal.<service>`` (computed by the provider, no API
    call), declared once per stack, so no principal hard-codes ``amazonaws.com``.
    """
    from cdktf_cdktf_provider_aws.data_aws_service_principal import DataAwsServicePrincipal

    stack = TerraformStack.of(scope)
    made: dict[str, str] = stack.__dict__.setdefault("_service_principals", {})
    if service not in made:
        name = re.sub(r"[^a-zA-Z0-9_]", "_", service)
        made[service] = DataAwsServicePrincipal(stack, f"aws_service_principal.{name}", service_name=service).name
    return made[service]


def guarded(protect: bool, ignore_changes: Sequence[str] = ()) -> dict[str, Any] | None:
    """A lifecycle block: ``prevent_destroy`` where data or identity lives (with deletion
    protection on), so a plan that would destroy or replace the resource fails at plan time;
    plus any ignored attributes."""
    lifecycle: dict[str, Any] = {}
    if protect:
        lifecycle["prevent_destroy"] = True
    if ignore_changes:
        lifecycle["ignore_changes"] = list(ignore_changes)
    return lifecycle or None


def literal(text: str) -> str:
    """A user-supplied string, escaped so Terraform never interpolates it."""
    return text.replace("${", "$${").replace("%{", "%%{")
