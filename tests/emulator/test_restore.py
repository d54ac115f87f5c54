"""The restore path (issue #15, docs/change-safety.md): a snapshot of an applied database is
restored into a new environment with ``db_snapshot_identifier``, with the real provider on the
emulator; the setting never touches the database of an existing environment.

Only the database and what it needs are applied (``-target=aws_db_instance.mlflow``): the rest of
the stack plays no part in a restore, and the full apply is the deploy test's.
"""
from __future__ import annotations

import json

import pytest

from tests.emulator.harness import Terraform, emulator_settings
from tests.support import synth_json, terraform_copy

pytestmark = pytest.mark.emulator

DB = "aws_db_instance.mlflow"


def _database_only(tf: Terraform, phase: str, *extra: str) -> None:
    tf(phase, "apply", "-input=false", "-auto-approve", f"-target={DB}", *extra)


def test_a_snapshot_is_restored_into_a_new_environment(moto_server, tmp_path):
    rds = moto_server.client("rds")
    source = emulator_settings({}, moto_server)
    source_dir = tmp_path / "source"
    terraform_copy(synth_json(source), source_dir)
    tf = Terraform(source_dir)
    tf("init", "init", "-input=false")
    _database_only(tf, "apply-source")
    snapshot = rds.create_db_snapshot(DBInstanceIdentifier=f"{source.prefix}-db",
                                      DBSnapshotIdentifier=f"{source.prefix}-before-restore")["DBSnapshot"]

    restored = emulator_settings({"environment": "restored",
                                  "db_snapshot_identifier": snapshot["DBSnapshotIdentifier"]}, moto_server)
    restored_dir = tmp_path / "restored"
    terraform_copy(synth_json(restored), restored_dir)
    rtf = Terraform(restored_dir)
    rtf("init", "init", "-input=false")
    _database_only(rtf, "apply-restored")

    calls = moto_server.log.read_text()
    assert "RestoreDBInstanceFromDBSnapshot 200" in calls, "the database was not created from the snapshot"
    db = rds.describe_db_instances(DBInstanceIdentifier=f"{restored.prefix}-db")["DBInstances"][0]
    assert db["Engine"] == snapshot["Engine"] and db["StorageEncrypted"]
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] != rds.describe_db_instances(
        DBInstanceIdentifier=f"{source.prefix}-db")["DBInstances"][0]["DBSubnetGroup"]["DBSubnetGroupName"]
    again = rtf("re-plan", "plan", "-input=false", "-detailed-exitcode", f"-target={DB}", ok=(0, 2))
    assert again.returncode == 0, f"the restored environment does not settle:\n{again.stdout[-3000:]}"

    # The same setting on the existing environment changes nothing: it cannot roll it back.
    late = emulator_settings({"db_snapshot_identifier": snapshot["DBSnapshotIdentifier"]}, moto_server)
    terraform_copy(synth_json(late), source_dir)
    # (Read from the plan's machine-readable output: no second load of the provider for `show -json`.)
    messages = [json.loads(line) for line in tf("plan-late", "plan", "-input=false", f"-target={DB}",
                                                "-json").stdout.splitlines() if line.startswith("{")]
    assert [m["change"]["resource"]["addr"] for m in messages if m.get("type") == "planned_change"] == []
    summary = [m["changes"] for m in messages if m.get("type") == "change_summary"]
    assert summary and (summary[0]["add"], summary[0]["change"], summary[0]["remove"]) == (0, 0, 0), summary
