"""Run parliament and cloudsplaining over policy documents; print their findings as JSON.

Runs in its own virtualenv (.venv-iam, tools/iam-lint/requirements.txt): cloudsplaining 0.9
needs a newer policy_sentry than checkov 3.3 allows. tests/test_policy_scan.py calls it:

    .venv-iam/bin/python tools/iam-lint/lint.py docs.json

docs.json: [{"id": ..., "kind": "identity" | "resource" | "trust", "policy": {...}}, ...]
Output: {"versions": {...}, "findings": [{"tool", "doc", "finding", "detail"}, ...]}

- parliament (with its community auditors) reads identity and resource policies: actions,
  resources and condition keys against AWS's reference. Not trust policies: having no
  Resource, they are "malformed" to it.
- cloudsplaining reads identity policies (privilege escalation, data exfiltration, resource
  exposure, credentials exposure, infrastructure modification, service wildcards: statements
  without resource constraints, as `cloudsplaining scan-policy-file` reports them) and, for resource and trust policies, who outside the account or
  on the internet they admit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from importlib.metadata import version

import parliament
from parliament.cli import is_finding_filtered
from cloudsplaining.command.scan_policy_file import scan_policy
from cloudsplaining.scan.assume_role_policy_document import AssumeRolePolicyDocument
from cloudsplaining.scan.resource_policy_document import ResourcePolicyDocument

# The community auditors' own severities, as the CLI's --include-community-auditors loads them.
parliament.override_config(str(Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"))
# Everything parliament reports but what its own configuration mutes.
MINIMUM_SEVERITY = "INFO"
# cloudsplaining's result keys that are findings (the others are summaries).
CLOUDSPLAINING_RISKS = ("PrivilegeEscalation", "DataExfiltration", "ResourceExposure", "CredentialsExposure",
                        "InfrastructureModification", "ServiceWildcard")


def parliament_findings(doc: dict) -> list[dict]:
    """As `parliament --include-community-auditors --minimum_severity INFO` reports them."""
    out = []
    policy = parliament.analyze_policy_string(json.dumps(doc["policy"]), include_community_auditors=True,
                                              config=parliament.config)
    for f in policy.findings:
        f = parliament.enhance_finding(f)
        if is_finding_filtered(f, MINIMUM_SEVERITY):
            continue
        out.append({"tool": "parliament", "doc": doc["id"], "finding": f.issue, "severity": f.severity,
                    "detail": json.dumps({"detail": f.detail, "location": f.location}, default=str,
                                         sort_keys=True)[:400]})
    return out


def cloudsplaining_findings(doc: dict) -> list[dict]:
    out = []

    def add(finding: str, detail) -> None:
        out.append({"tool": "cloudsplaining", "doc": doc["id"], "finding": finding,
                    "detail": json.dumps(detail, default=str, sort_keys=True)[:400]})

    if doc["kind"] == "identity":
        results = scan_policy(doc["policy"])  # cloudsplaining's defaults, as its CLI
        for risk in CLOUDSPLAINING_RISKS:
            found = (results.get(risk) or {}).get("findings")
            if found:
                add(risk, found)
    elif doc["kind"] == "trust":
        trust = AssumeRolePolicyDocument(doc["policy"])
        for check in ("role_assumable_by_any_principal", "role_assumable_by_cross_account_principals"):
            if getattr(trust, check):
                add(check, getattr(trust, check))
    else:
        internet = ResourcePolicyDocument(doc["policy"]).internet_accessible_actions
        if internet:
            add("internet_accessible_actions", internet)
    return out


def main(path: str) -> int:
    docs = json.loads(open(path).read())
    findings = []
    for doc in docs:
        if doc["kind"] != "trust":  # parliament reads trust policies as malformed (no Resource)
            findings += parliament_findings(doc)
        findings += cloudsplaining_findings(doc)
    json.dump({"versions": {t: version(t) for t in ("parliament", "cloudsplaining")},
               "documents": len(docs), "findings": findings}, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
