"""Policy-scanner gate: checkov on the synthesized JSON of both configurations.

checkov lives in its own virtualenv (it pins an older boto3 than moto wants):

    python3 -m venv .venv-checkov
    .venv-checkov/bin/pip install -r tools/checkov/requirements.txt

`--framework terraform_json` is required: `--framework terraform` runs 0
checks on .tf.json and exits 0, a gate that cannot fail. Accepted failures are
listed, each with its reason, in .checkov.skip.yaml; a listed entry that no
longer matches any failure is stale and fails the test too.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT, SECOND_CONFIG, settings_for, synth_json

pytestmark = pytest.mark.policy

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_FILE = ROOT / ".checkov.skip.yaml"
CONFIGS = {"default": {}, "second": SECOND_CONFIG}
MIN_PASSED = 100  # ~200 checks pass today; fewer than this means the scan did not really run


def _checkov() -> Path:
    if not CHECKOV.exists():
        hint = ("checkov is not installed: python3 -m venv .venv-checkov && "
                ".venv-checkov/bin/pip install -r tools/checkov/requirements.txt")
        if os.environ.get("CI"):
            pytest.fail(hint)
        pytest.skip(hint)
    return CHECKOV


def load_skips() -> list[dict]:
    """Entries of both sections of the skip file, each tagged with its section."""
    data = yaml.safe_load(SKIP_FILE.read_text()) or {}
    unknown = set(data) - {"skips", "pending_fixes"}
    assert not unknown, f"{SKIP_FILE.name}: unknown sections {sorted(unknown)}"
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
