"""Policy-scanner gate: checkov, parliament and cloudsplaining on every tested configuration.

Each scanner lives in its own virtualenv (`make .venv-checkov/.installed` makes both):
checkov pins an older boto3 than moto wants, and cloudsplaining 0.9 a newer
policy_sentry than checkov allows.

    python3 -m venv .venv-checkov && .venv-checkov/bin/pip install -r tools/checkov/requirements.txt
    python3 -m venv .venv-iam && .venv-iam/bin/pip install -r tools/iam-lint/requirements.txt

checkov: `--framework terraform_json` is required: `--framework terraform` runs
0 checks on .tf.json and exits 0, a gate that cannot fail. Accepted failures are
listed, each with its reason, in .checkov.skip.yaml.

parliament and cloudsplaining (tools/iam-lint/lint.py) read every policy
document of the stack (tests/policy_docs.py: IAM policies, inline and trust
policies, the key, bucket, topic and endpoint policies), references made
concrete. Accepted findings are in .iam-lint.skip.yaml.

In both files a listed entry that no longer matches any finding is stale and
fails the test too.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.policy_docs import policy_documents
from tests.support import DOMAIN_CONFIG, HCL_ADOPTION, ROOT, SECOND_CONFIG, settings_for, synth_json

pytestmark = pytest.mark.policy

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
IAM_PYTHON = ROOT / ".venv-iam" / "bin" / "python"
IAM_LINT = ROOT / "tools" / "iam-lint" / "lint.py"
SKIP_FILE = ROOT / ".checkov.skip.yaml"
IAM_SKIP_FILE = ROOT / ".iam-lint.skip.yaml"
CONFIGS = {"default": {}, "second": SECOND_CONFIG, "domain": DOMAIN_CONFIG, "hcl": HCL_ADOPTION}
MIN_PASSED = 100  # ~200 checks pass today; fewer than this means the scan did not really run
MIN_DOCUMENTS = 12  # policy documents per stack (14 today); fewer means the collector missed some


def _tool(exe: Path, venv: str, requirements: str) -> Path:
    if not exe.exists():
        hint = (f"{exe.name} is not installed: make .venv-checkov/.installed, or python3 -m venv {venv} && "
                f"{venv}/bin/pip install -r {requirements}")
        if os.environ.get("CI"):
            pytest.fail(hint)
        pytest.skip(hint)
    return exe


def _checkov() -> Path:
    return _tool(CHECKOV, ".venv-checkov", "tools/checkov/requirements.txt")


def load_skips(path: Path = SKIP_FILE) -> list[dict]:
    """Entries of both sections of a skip file, each tagged with its section."""
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"skips", "pending_fixes"}
    assert not unknown, f"{path.name}: unknown sections {sorted(unknown)}"
    entries = []
    for section in ("skips", "pending_fixes"):
        for e in data.get(section) or []:
            entries.append({**e, "section": section})
    return entries


def scan(config: str, tmp_path: Path) -> dict:
    """checkov's JSON report for one configuration."""
    exe = _checkov()
    workdir = tmp_path / config
    workdir.mkdir()
    stack = synth_json(settings_for(**CONFIGS[config]))
    # checkov 3.3.30's terraform_json parser takes every terraform.* value and every top-level
    # entry for a block: the string required_version and the lists of moved/removed blocks (the
    # adoption) are parsing errors with 0 checks run. No check reads them.
    stack = {k: v for k, v in stack.items() if k not in ("moved", "removed", "import")}
    stack["terraform"] = {k: v for k, v in stack["terraform"].items() if k != "required_version"}
    (workdir / "cdk.tf.json").write_text(json.dumps(stack, indent=2))
    proc = subprocess.run(
        [str(exe), "-d", str(workdir), "--framework", "terraform_json", "-o", "json",
         "--skip-download", "--compact"],
        capture_output=True, text=True, timeout=300,
    )
    # exit 0 = all passed, 1 = some failed; anything else is checkov itself failing
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one report per framework
        report = next(r for r in report if r.get("check_type") == "terraform_json")
    assert report.get("check_type") == "terraform_json", f"unexpected report: {str(report)[:500]}"
    return report


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("checkov")
    return {config: scan(config, tmp) for config in CONFIGS}


def _matches(entry: dict, failure: dict) -> bool:
    if entry["check"] != failure["check_id"]:
        return False
    resources = entry.get("resources")
    return not resources or failure["resource"] in resources


def test_skip_file_entries_are_well_formed():
    seen = set()
    for e in load_skips():
        assert isinstance(e.get("check"), str) and e["check"].startswith("CKV"), f"bad check id in {e}"
        reason = e.get("reason")
        assert isinstance(reason, str) and reason.strip() and "\n" not in reason.strip(), \
            f"{e['check']}: needs a one-line reason"
        if e["section"] == "pending_fixes":
            assert isinstance(e.get("fix"), str) and e["fix"].strip(), f"{e['check']}: a pending fix names the fix"
        key = (e["check"], tuple(e.get("resources") or ()))
        assert key not in seen, f"{e['check']} is listed twice"
        seen.add(key)


def test_policy_scan_has_no_unlisted_failures_and_no_stale_skips(reports):
    entries = load_skips()
    used: dict[int, set[str]] = {i: set() for i in range(len(entries))}
    unlisted = []
    for config, report in reports.items():
        summary = report["summary"]
        failed = report["results"]["failed_checks"]
        print(f"\ncheckov {summary.get('checkov_version')} [{config}]: passed={summary['passed']} "
              f"failed={summary['failed']} skipped={summary['skipped']} "
              f"parsing_errors={summary['parsing_errors']}")
        assert summary["parsing_errors"] == 0, f"{config}: checkov could not parse the JSON"
        assert summary["passed"] > MIN_PASSED, \
            f"{config}: only {summary['passed']} checks passed: the scanner did not really run"
        accepted = pending = 0
        for f in failed:
            hits = [i for i, e in enumerate(entries) if _matches(e, f)]
            for i in hits:
                used[i].add(f["resource"])
            if not hits:
                unlisted.append(f"[{config}] {f['check_id']} {f['resource']}: {f['check_name']}")
            elif any(entries[i]["section"] == "pending_fixes" for i in hits):
                pending += 1
            else:
                accepted += 1
        print(f"  failed checks: {accepted} skipped by reason, {pending} pending a fix, "
              f"{len(failed) - accepted - pending} unlisted")
    stale = []
    for i, e in enumerate(entries):
        if not used[i]:
            stale.append(f"{e['section']}: {e['check']} (no failure matches it any more)")
        for r in set(e.get("resources") or ()) - used[i]:
            if used[i]:
                stale.append(f"{e['section']}: {e['check']} resource {r} (passes now)")
    problems = []
    if unlisted:
        problems.append("failed checks not in .checkov.skip.yaml (fix them, or skip with a reason):\n  "
                        + "\n  ".join(unlisted))
    if stale:
        problems.append("stale entries in .checkov.skip.yaml (delete them):\n  " + "\n  ".join(stale))
    assert not problems, "\n".join(problems)


# --- IAM linters -------------------------------------------------------------------

def iam_lint(config: str, tmp_path: Path) -> dict:
    """tools/iam-lint/lint.py's report on every policy document of one configuration."""
    exe = _tool(IAM_PYTHON, ".venv-iam", "tools/iam-lint/requirements.txt")
    docs = policy_documents(synth_json(settings_for(**CONFIGS[config])))
    path = tmp_path / f"{config}-policies.json"
    path.write_text(json.dumps(docs, indent=1))
    proc = subprocess.run([str(exe), str(IAM_LINT), str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"iam-lint exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout)
    report["kinds"] = sorted({d["kind"] for d in docs})
    return report


@pytest.fixture(scope="module")
def iam_reports(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("iam-lint")
    return {config: iam_lint(config, tmp) for config in CONFIGS}


def _iam_matches(entry: dict, finding: dict) -> bool:
    return (entry["tool"] == finding["tool"] and entry["finding"] == finding["finding"]
            and finding["doc"] in entry["docs"])


def test_iam_skip_file_entries_are_well_formed():
    seen = set()
    for e in load_skips(IAM_SKIP_FILE):
        assert e.get("tool") in ("parliament", "cloudsplaining"), f"bad tool in {e}"
        assert isinstance(e.get("finding"), str) and e["finding"], f"no finding in {e}"
        assert isinstance(e.get("docs"), list) and e["docs"], f"{e['finding']}: name the documents (addresses)"
        reason = e.get("reason")
        assert isinstance(reason, str) and reason.strip() and "\n" not in reason.strip(), \
            f"{e['finding']}: needs a one-line reason"
        if e["section"] == "pending_fixes":
            assert isinstance(e.get("fix"), str) and e["fix"].strip(), f"{e['finding']}: a pending fix names the fix"
        key = (e["tool"], e["finding"])
        assert key not in seen, f"{e['tool']} {e['finding']} is listed twice"
        seen.add(key)


def test_iam_linters_have_no_unlisted_findings_and_no_stale_skips(iam_reports):
    entries = load_skips(IAM_SKIP_FILE)
    used: dict[int, set[str]] = {i: set() for i in range(len(entries))}
    unlisted = []
    for config, report in iam_reports.items():
        findings = report["findings"]
        v = report["versions"]
        print(f"\nparliament {v['parliament']}, cloudsplaining {v['cloudsplaining']} [{config}]: "
              f"documents={report['documents']} findings={len(findings)}")
        assert report["documents"] >= MIN_DOCUMENTS, \
            f"{config}: only {report['documents']} policy documents: the collector missed some"
        assert report["kinds"] == ["identity", "resource", "trust"], f"{config}: kinds {report['kinds']}"
        accepted = pending = 0
        for f in findings:
            hits = [i for i, e in enumerate(entries) if _iam_matches(e, f)]
            for i in hits:
                used[i].add(f["doc"])
            if not hits:
                unlisted.append(f"[{config}] {f['tool']} {f['finding']} in {f['doc']}: {f['detail'][:300]}")
            elif any(entries[i]["section"] == "pending_fixes" for i in hits):
                pending += 1
            else:
                accepted += 1
        print(f"  findings: {accepted} skipped by reason, {pending} pending a fix, "
              f"{len(findings) - accepted - pending} unlisted")
    stale = []
    for i, e in enumerate(entries):
        for doc in sorted(set(e["docs"]) - used[i]):
            stale.append(f"{e['section']}: {e['tool']} {e['finding']} in {doc} (no finding matches it any more)")
    problems = []
    if unlisted:
        problems.append(f"IAM linter findings not in {IAM_SKIP_FILE.name} (fix them, or skip with a reason):\n  "
                        + "\n  ".join(unlisted))
    if stale:
        problems.append(f"stale entries in {IAM_SKIP_FILE.name} (delete them):\n  " + "\n  ".join(stale))
    assert not problems, "\n".join(problems)
