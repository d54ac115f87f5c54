"""Adoption of the guide's HCL deployment, import blocks, remote state and environments."""
from __future__ import annotations

import json
import re

import pytest

from modules.adoption import MOVED, REMOVED, REPLACED, SAME_ADDRESS, listener_moves, moved_blocks
from modules.settings import SettingsError
from tests.support import HCL_ADOPTION, ROOT, SECOND_CONFIG, run_main, settings_for, synth_json

HCL_TABLE = ROOT / "tests" / "spec" / "hcl-deployment-addresses.tsv"
SHARED_HCL_TABLE = ROOT.parent / "shared" / "spec" / "hcl-deployment-addresses.tsv"


def hcl_rows() -> list[tuple[str, str]]:
    rows = []
    for line in HCL_TABLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            address, count = (line.split("\t") + [""])[:2]
            rows.append((address, count))
    return rows


def our_addresses(stack: dict) -> set[str]:
    return {f"{t}.{n}" for t, items in stack["resource"].items() for n in items}


@pytest.fixture(scope="module")
def adopting() -> dict:
    return synth_json(settings_for(**HCL_ADOPTION))


def test_vendored_hcl_table_is_the_shared_one():
    if not SHARED_HCL_TABLE.exists():
        pytest.skip("shared/spec is not beside this checkout")
    assert HCL_TABLE.read_text() == SHARED_HCL_TABLE.read_text()


def test_every_hcl_address_is_moved_removed_or_already_ours():
    mapped = {re.sub(r"\[(\*|0)\]$", "", a) for a in {**MOVED, **listener_moves(True)}}
    for address, _ in hcl_rows():
        assert address in mapped or address in REMOVED or address in SAME_ADDRESS, address


def test_conditional_hcl_resources_move_from_instance_key_0():
    for address, count in hcl_rows():
        if "?" in count and address in {re.sub(r"\[\d\]$", "", k) for k in MOVED}:
            assert f"{address}[0]" in MOVED or f"{address}[*]" in MOVED, address


def test_moved_blocks_point_at_resources_the_stack_has(adopting):
    ours = our_addresses(adopting)
    for block in adopting["moved"]:
        assert re.sub(r"\[\d+\]$", "", block["to"]) in ours, block


def test_counted_resources_move_instance_by_instance(adopting):
    moves = {(b["from"], b["to"]) for b in adopting["moved"]}
    for i in (0, 1):
        assert (f"module.networking.aws_subnet.public[{i}]", f"aws_subnet.public[{i}]") in moves
        assert (f"module.networking.aws_nat_gateway.main[{i}]", f"aws_nat_gateway.main[{i}]") in moves
    assert ("module.networking.aws_vpc_endpoint.s3[0]", "aws_vpc_endpoint.s3") in moves
    assert ("module.mlflow.aws_lb_listener.mlflow", "aws_lb_listener.http") in moves


def test_https_listener_moves_follow_the_certificate():
    blocks = moved_blocks(settings_for(**SECOND_CONFIG))
    moves = {b["from"]: b["to"] for b in blocks}
    assert moves["module.mlflow.aws_lb_listener.mlflow"] == "aws_lb_listener.https"
    assert moves["module.mlflow.aws_lb_listener.http_redirect[0]"] == "aws_lb_listener.http"
    assert sum(1 for b in blocks if b["from"].startswith("module.networking.aws_subnet.public[")) == 3
    assert sum(1 for b in blocks if b["from"].startswith("module.networking.aws_nat_gateway.main[")) == 1


def test_removed_blocks_never_destroy(adopting):
    assert {b["from"] for b in adopting["removed"]} == set(REMOVED)
    assert all(b["lifecycle"] == {"destroy": False} for b in adopting["removed"])
    assert all("[" not in b["from"] for b in adopting["removed"])


# The HCL deployment's monitoring and scaling (issue: moved, or replaced create-before-destroy; never forgotten).
HCL_MONITORING = (
    "module.mlflow.aws_autoscaling_policy.scale_up", "module.mlflow.aws_autoscaling_policy.scale_down",
    "module.mlflow.aws_cloudwatch_metric_alarm.cpu_high", "module.mlflow.aws_cloudwatch_metric_alarm.cpu_low",
    "module.mlflow.aws_cloudwatch_dashboard.mlflow", "module.monitoring.aws_cloudwatch_dashboard.mlflow_main",
    "module.monitoring.aws_cloudwatch_query_definition.error_analysis",
    "module.monitoring.aws_cloudwatch_query_definition.performance_analysis",
    "module.monitoring.aws_cloudwatch_metric_alarm.asg_memory_high",
    "module.monitoring.aws_cloudwatch_metric_alarm.rds_connections",
    "module.database.aws_cloudwatch_log_group.elasticache_slow[0]",
)
NAME_ATTRIBUTE = {"aws_autoscaling_policy": "name", "aws_cloudwatch_metric_alarm": "alarm_name",
                  "aws_cloudwatch_dashboard": "dashboard_name", "aws_cloudwatch_log_group": "name"}


def deployed_hcl_resources() -> dict[str, dict]:
    for path in (ROOT.parent / "shared" / "spec" / "hcl-deployment-state.json",
                 ROOT / "tests" / "spec" / "hcl-deployment-state.json"):
        if path.exists():
            return {r["address"]: r["attributes"] for r in json.loads(path.read_text())["resources"]}
    pytest.skip("hcl-deployment-state.json is neither in shared/spec nor in tests/spec")


def test_hcl_monitoring_and_scaling_are_moved_not_forgotten():
    for address in HCL_MONITORING:
        assert address in MOVED and address.removesuffix("[0]") not in REMOVED, address


def test_replaced_ones_are_built_before_the_deployed_ones_go(adopting):
    deployed = deployed_hcl_resources()
    targets = {dst: src for src, dst in MOVED.items()}
    assert set(REPLACED) <= set(targets)
    for ours, why in REPLACED.items():
        rtype, name = ours.split(".")
        ours_config = adopting["resource"][rtype][name]
        assert ours_config["lifecycle"]["create_before_destroy"] is True, ours
        # a name of its own: both exist between the create and the destroy
        attribute = NAME_ATTRIBUTE[rtype]
        assert ours_config[attribute] != deployed[targets[ours]][attribute], ours
        assert why


def test_moved_in_place_ones_keep_their_deployed_names(adopting):
    deployed = deployed_hcl_resources()
    for src, dst in MOVED.items():
        rtype, name = dst.split(".")
        if rtype not in NAME_ATTRIBUTE or dst in REPLACED or src not in deployed:
            continue
        attribute = NAME_ATTRIBUTE[rtype]
        assert adopting["resource"][rtype][name][attribute] == deployed[src][attribute], (src, dst)


def test_every_removed_block_keeps_its_reason():
    assert all(isinstance(why, str) and len(why) > 20 for why in REMOVED.values())


def test_no_adoption_blocks_by_default():
    stack = synth_json(settings_for())
    assert "moved" not in stack and "removed" not in stack and "import" not in stack


def test_imports_emit_import_blocks():
    stack = synth_json(settings_for(imports={"aws_key_pair.mlflow_key": "existing-key",
                                             "aws_s3_bucket.mlflow_artifacts": "my-bucket"}))
    assert stack["import"] == [{"to": "aws_key_pair.mlflow_key", "id": "existing-key"},
                               {"to": "aws_s3_bucket.mlflow_artifacts", "id": "my-bucket"}]


def test_import_of_an_unknown_address_is_a_clear_error():
    with pytest.raises(SettingsError, match="aws_s3_bucket.nope is not an address of this stack"):
        synth_json(settings_for(imports={"aws_s3_bucket.nope": "x"}))
    with pytest.raises(SettingsError, match="imports"):
        settings_for(imports={"not an address": "x"})


def test_s3_backend_with_native_locking_and_encryption():
    stack = synth_json(settings_for(backend={
        "bucket": "acme-tf-state", "key": "mlflow/prod.tfstate", "region": "eu-west-1",
        "kms_key_id": "arn:aws:kms:eu-west-1:123456789012:key/abcd-1234"}))
    assert stack["terraform"]["backend"] == {"s3": {
        "bucket": "acme-tf-state", "key": "mlflow/prod.tfstate", "region": "eu-west-1", "encrypt": True,
        "kms_key_id": "arn:aws:kms:eu-west-1:123456789012:key/abcd-1234", "use_lockfile": True}}


def test_local_backend_is_the_default():
    # Testing.synth leaves the implicit local backend out; main.py writes it (terraform.<stack>.tfstate).
    assert "s3" not in synth_json(settings_for())["terraform"].get("backend", {})


def test_two_environments_synthesize_side_by_side(tmp_path):
    proc = run_main(tmp_path, {"dev.toml": 'environment = "dev"\n',
                               "prod.toml": 'environment = "prod"\ndb_engine = "postgres"\naz_count = 3\n'})
    assert proc.returncode == 0, proc.stderr
    stacks = sorted(p.name for p in (tmp_path / "cdktf.out" / "stacks").iterdir())
    assert stacks == ["mlflow-dev", "mlflow-prod"]
    prod = (tmp_path / "cdktf.out" / "stacks" / "mlflow-prod" / "cdk.tf.json").read_text()
    dev = (tmp_path / "cdktf.out" / "stacks" / "mlflow-dev" / "cdk.tf.json").read_text()
    assert '"mlflow-prod-alb"' in prod and '"mlflow-prod-alb"' not in dev and '"mlflow-dev-alb"' in dev
    assert '"engine": "postgres"' in prod and '"engine": "mysql"' in dev


def test_two_files_for_one_environment_are_refused(tmp_path):
    proc = run_main(tmp_path, {"a.toml": 'environment = "prod"\n', "b.toml": 'environment = "prod"\n'})
    assert proc.returncode == 2 and "mlflow-prod" in proc.stderr
    assert not (tmp_path / "cdktf.out").exists()


# --- the HCL deployment's identity (hcl-deployment-identity.tsv), row by row ------------------

def identity_rows() -> list[tuple[str, str, str]]:
    for path in (ROOT.parent / "shared" / "spec" / "hcl-deployment-identity.tsv",
                 ROOT / "tests" / "spec" / "hcl-deployment-identity.tsv"):
        if path.exists():
            lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
            return [tuple(ln.split("\t")) for ln in lines[1:]]  # type: ignore[misc]
    pytest.skip("hcl-deployment-identity.tsv is neither in shared/spec nor in tests/spec")


def our_instance(stack: dict, hcl_address: str) -> tuple[dict, int | None]:
    """Our configuration of the resource an HCL address moves to, and its instance index."""
    key = re.sub(r"\[(\d+)\]$", "[*]", hcl_address)
    index = int(m.group(1)) if (m := re.search(r"\[(\d+)\]$", hcl_address)) else None
    target = {**MOVED, **listener_moves(False)}.get(key) or MOVED.get(hcl_address)
    assert target, f"{hcl_address} is not moved"
    rtype, name = re.sub(r"\[.*\]$", "", target).split(".")
    return stack["resource"][rtype][name], (index if key.endswith("[*]") else None)


def resolve(stack: dict, value: object) -> object:
    """Follow a reference to another resource's name (``${aws_x.y.name}``, a bucket's ``.id``)."""
    while isinstance(value, str) and (m := re.fullmatch(r"\$\{(\w+)\.(\w+)\.(name|id|bucket)\}", value)):
        target = stack["resource"][m.group(1)][m.group(2)]
        value = target.get("name", target.get("bucket"))
    return value


def test_every_identity_attribute_of_the_hcl_deployment_is_kept(adopting):
    """Each row is an attribute that forces replacement; our hcl-named config must reproduce it."""
    p = "mlflow-dev"
    checked = 0
    for hcl_address, attribute, value in identity_rows():
        config, index = our_instance(adopting, hcl_address)
        ours = config.get(attribute)
        if index is not None and isinstance(ours, str) and ours.startswith("${element("):
            ours = json.loads(ours.removeprefix("${element(").rsplit(",", 1)[0])[index]
        expected = value.replace("{p}", p).replace("<random_id.bucket_suffix hex>", "${random_id.bucket_suffix.hex}")
        if value.startswith("name_prefix "):
            assert config.get("name_prefix") == expected.removeprefix("name_prefix "), (hcl_address, attribute)
            assert "name" not in config, hcl_address
        elif value == "(empty: not set)":
            assert ours in (None, ""), (hcl_address, attribute, ours)
        elif value.startswith("("):
            continue  # follows another resource (a subnet, the role, the policy above): checked there
        else:
            assert resolve(adopting, ours) == expected, (hcl_address, attribute, ours, expected)
        checked += 1
    assert checked >= 40


def test_adopted_instances_read_the_parameters_where_the_hcl_wrote_them(adopting):
    import base64
    import io
    import tarfile

    bundle = adopting["resource"]["aws_s3_object"]["bootstrap_bundle"]["content_base64"]
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(bundle))) as tar:
        env = tar.extractfile("files/opt/mlflow/launcher.env").read().decode()
    names = dict(line.split("=", 1) for line in env.splitlines() if line.startswith("MLFLOW_LAUNCH_SSM_"))
    params = {r["name"] for r in adopting["resource"]["aws_ssm_parameter"].values()}
    for row_address, attribute, value in identity_rows():
        if row_address.startswith("module.database.aws_ssm_parameter."):
            assert value.replace("{p}", "mlflow-dev") in names.values(), value
    assert set(names.values()) <= params, "the launcher reads a parameter the stack does not write"
    ssm_policy = json.loads(adopting["resource"]["aws_iam_policy"]["mlflow_ssm_policy"]["policy"])
    resources = ssm_policy["Statement"][0]["Resource"]
    assert any(r.endswith(":parameter/mlflow-dev/*") for r in resources), resources


def test_an_import_of_a_missing_address_stops_main_with_nothing_written(tmp_path):
    proc = run_main(tmp_path, {"dev.toml": '[imports]\n"aws_s3_bucket.nope" = "x"\n'})
    assert proc.returncode == 2 and "aws_s3_bucket.nope is not an address of this stack" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cdktf.out").exists(), "a half-written cdktf.out was left behind"
