"""Every policy document of a synthesized stack, with Terraform references made concrete.

The IAM linters and the unit tests of tests/test_iam.py read policies as AWS would see them
after apply, so each ``${...}`` reference becomes a plausible value of its kind: the account
123456789012, partition aws, a key ARN, a bucket's ARN from its name, and so on. A reference
this module does not know fails loudly rather than reaching a linter as text.
"""
from __future__ import annotations

import json
import re
from typing import Any

from tests.support import RANDOM_SUFFIX_STANDIN

ACCOUNT = "123456789012"
KEY_ID = "11111111-2222-3333-4444-555555555555"

# Resource types whose policy is an identity policy; every other ``policy`` is a resource policy.
IDENTITY_TYPES = {"aws_iam_policy", "aws_iam_role_policy"}
_REF = re.compile(r"\$\{([^{}]*)\}")


class UnresolvedReference(AssertionError):
    pass


def _region(stack: dict) -> str:
    providers = stack["provider"]["aws"]
    return next(p["region"] for p in providers if "alias" not in p)


def _value(stack: dict, ref: str) -> str:
    region = _region(stack)
    res, data = stack.get("resource", {}), stack.get("data", {})
    fixed = {
        "data.aws_partition.current.partition": "aws",
        "data.aws_partition.current.dns_suffix": "amazonaws.com",
        "data.aws_partition.current.reverse_dns_prefix": "com.amazonaws",
        "data.aws_caller_identity.current.account_id": ACCOUNT,
        "random_id.bucket_suffix.hex": RANDOM_SUFFIX_STANDIN,
    }
    if ref in fixed:
        return fixed[ref]
    parts = ref.split(".")
    if parts[0] == "data" and parts[1] == "aws_service_principal" and parts[3] == "name":
        return f"{data['aws_service_principal'][parts[2]]['service_name']}.amazonaws.com"
    if len(parts) == 3 and parts[2] == "arn":
        rtype, name = parts[0], parts[1]
        r = res.get(rtype, {}).get(name)
        if r is not None:
            if rtype == "aws_kms_key":
                return f"arn:aws:kms:{region}:{ACCOUNT}:key/{KEY_ID}"
            if rtype == "aws_s3_bucket":
                return f"arn:aws:s3:::{r['bucket']}"
            if rtype == "aws_cloudwatch_log_group":
                return f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{r['name']}"
            if rtype == "aws_sns_topic":
                return f"arn:aws:sns:{region}:{ACCOUNT}:{r['name']}"
            if rtype == "aws_iam_role":
                return f"arn:aws:iam::{ACCOUNT}:role/{r.get('name') or r['name_prefix'] + 'x'}"
    raise UnresolvedReference(f"tests/policy_docs.py does not know the reference ${{{ref}}}: teach _value its value")


def resolve(stack: dict, text: str) -> str:
    """text with every ``${...}`` replaced, innermost first (bucket names hold the suffix)."""
    for _ in range(10):
        new = _REF.sub(lambda m: _value(stack, m.group(1)), text)
        if new == text:
            return new
        text = new
    raise UnresolvedReference(f"references nested too deep in {text[:200]}")


def policy_documents(stack: dict) -> list[dict[str, Any]]:
    """[{"id": address, "kind": identity|resource|trust, "policy": {...}}] of every policy in the stack."""
    docs = []
    for rtype, items in stack.get("resource", {}).items():
        for name, r in items.items():
            for attr in ("policy", "assume_role_policy"):
                raw = r.get(attr)
                if not isinstance(raw, str) or "Statement" not in raw:
                    continue
                kind = "trust" if attr == "assume_role_policy" else (
                    "identity" if rtype in IDENTITY_TYPES else "resource")
                docs.append({"id": f"{rtype}.{name}" + (".assume_role_policy" if kind == "trust" else ""),
                             "kind": kind, "policy": json.loads(resolve(stack, raw))})
    return docs
