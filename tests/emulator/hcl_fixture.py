"""The public HCL deployment (environments/dev), applied on the emulator as a test fixture.

``hcl_deployment/`` is a Terraform configuration written from the facts in
shared/spec (hcl-deployment-addresses.tsv, hcl-deployment-identity.tsv,
hcl-deployment-state.json): the same resource addresses, identity attributes
and settings as that deployment. ``apply_hcl_deployment`` applies it on a moto
server and returns the state file, so that a test can plan the product stack's
adoption on top of the real thing.

    server = start_moto(tmp_path / "moto.log")
    state = apply_hcl_deployment(server, tmp_path / "hcl")
    resources = hcl_state_resources(state.parent)   # {address: attributes}
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from tests.support import RANDOM_SUFFIX_STANDIN, ROOT, terraform, terraform_env

FIXTURE_DIR = Path(__file__).resolve().parent / "hcl_deployment"

VENDORED_SPEC = ROOT / "tests" / "spec"
SHARED_SPEC = ROOT.parent / "shared" / "spec"

# A literal test password instead of module.database.random_password.db_password.
TEST_DB_PASSWORD = "HclFixture-Test-Password-1"

# Addresses of hcl-deployment-addresses.tsv the fixture leaves out on purpose.
OMITTED: dict[str, str] = {
    "tls_private_key.mlflow_key":
        "hashicorp/tls is not in the offline provider mirror; the key pair gets the facts' public key literally",
    "random_id.bucket_suffix":
        "hashicorp/random is not in the offline provider mirror; its hex is the literal RANDOM_SUFFIX_STANDIN",
    "module.database.random_password.db_password":
        "hashicorp/random is not in the offline provider mirror; the password is a literal test variable",
    "module.security.aws_ec2_serial_console_access.mlflow":
        "moto 5.2.5 has no EnableSerialConsoleAccess (EC2); the facts' state lacks it too",
    "module.monitoring.aws_cloudwatch_query_definition.error_analysis":
        "moto 5.2.5 has no PutQueryDefinition (CloudWatch Logs); the facts' state lacks it too",
    "module.monitoring.aws_cloudwatch_query_definition.performance_analysis":
        "moto 5.2.5 has no PutQueryDefinition (CloudWatch Logs); the facts' state lacks it too",
}

# Attributes the emulator reads back differently depending on its extensions:
# (resource type, attribute) -> (the value that is also accepted besides the
# facts' value, why). The facts were recorded on moto 5.2.5 + the extensions of
# that day; a more faithful emulator returns the configured value instead.
EMULATOR_READBACK: dict[tuple[str, str], tuple[Any, str]] = {
    ("aws_autoscaling_policy", "enabled"): (
        True, "moto 5.2.5 DescribePolicies omits Enabled, so the provider reads false (the facts' value); "
              "with an extension that keeps the flag it reads the configured true"),
    ("aws_autoscaling_policy", "predictive_scaling_configuration"): (
        [], "moto 5.2.5 returned an empty predictive block for simple-scaling policies (the facts' value); with the "
            "scaling-policy read-back extension it returns none, as AWS does for a SimpleScaling policy"),
    ("aws_elasticache_replication_group", "maintenance_window"): (
        "sun:07:00-sun:09:00", "AWS stores the window in lowercase; plain moto kept the case it was sent (the facts' "
                               "value), the emulator now lowercases it as AWS does"),
}


class _Server(Protocol):
    @property
    def endpoint(self) -> str: ...


def spec_path(name: str) -> Path:
    """A facts file: shared/spec beside this checkout if present, else the vendored copy."""
    shared = SHARED_SPEC / name
    return shared if shared.exists() else VENDORED_SPEC / name


def facts_state() -> dict[str, dict[str, Any]]:
    """hcl-deployment-state.json as {address: attributes}."""
    data = json.loads(spec_path("hcl-deployment-state.json").read_text())
    return {r["address"]: r["attributes"] for r in data["resources"]}


def facts_public_key() -> str:
    return facts_state()["aws_key_pair.mlflow_key"]["public_key"]


def fixture_variables(server: _Server) -> dict[str, str]:
    return {
        "endpoint": server.endpoint,
        "bucket_suffix": RANDOM_SUFFIX_STANDIN,
        "db_password": TEST_DB_PASSWORD,
        "ssh_public_key": facts_public_key(),
    }


def apply_hcl_deployment(server: _Server, workdir: Path) -> Path:
    """Copy the fixture into workdir, init (offline mirror) and apply it on the server.

    Returns the path of the resulting terraform.tfstate. The variables are in
    workdir/terraform.tfvars.json, so a plain ``terraform plan`` in workdir (with
    tests.support.terraform_env) sees the same inputs. Wall times of the phases
    are in workdir/timings.json, the apply's output in workdir/apply.log.
    """
    workdir = Path(workdir)
    shutil.copytree(FIXTURE_DIR, workdir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    (workdir / "terraform.tfvars.json").write_text(json.dumps(fixture_variables(server), indent=2))
    env = terraform_env(workdir)
    timings: dict[str, float] = {}

    def run(phase: str, *args: str) -> None:
        start = time.monotonic()
        proc = terraform(workdir, *args, "-input=false", "-no-color", env=env)
        timings[phase] = round(time.monotonic() - start, 1)
        (workdir / f"{phase}.log").write_text(proc.stdout)

    run("init", "init")
    run("apply", "apply", "-auto-approve")
    # The facts' state was recorded after a refresh (the IAM policies'
    # attachment_count 1, the role's managed_policy_arns, the buckets'
    # versioning / encryption read back...): refresh once, as they did.
    run("refresh", "apply", "-refresh-only", "-auto-approve")
    (workdir / "timings.json").write_text(json.dumps(timings, indent=2))
    state = workdir / "terraform.tfstate"
    if not state.exists():
        raise AssertionError(f"terraform apply left no state in {workdir}")
    return state


def _walk_module(module: dict, out: dict[str, dict[str, Any]]) -> None:
    for r in module.get("resources", []):
        if r.get("mode") == "managed":
            out[r["address"]] = r.get("values", {})
    for child in module.get("child_modules", []):
        _walk_module(child, out)


def hcl_state_resources(workdir: Path) -> dict[str, dict[str, Any]]:
    """The applied state's managed resources as {address: attributes} (terraform show -json)."""
    workdir = Path(workdir)
    proc = terraform(workdir, "show", "-json", "-no-color", env=terraform_env(workdir))
    shown = json.loads(proc.stdout)
    out: dict[str, dict[str, Any]] = {}
    _walk_module(shown.get("values", {}).get("root_module", {}), out)
    return out


def omitted_addresses() -> dict[str, str]:
    """Addresses of hcl-deployment-addresses.tsv the fixture deliberately omits, with reasons."""
    return dict(OMITTED)


# --------------------------------------------------------------------------- the facts, as checks
#
# Each check takes a {address: attributes} mapping (the fixture's applied state,
# or the facts' own state: tests run them on both) and returns a list of
# failures, empty when everything holds.

PROJECT_PREFIX = "mlflow-dev"  # {p} of the identity facts: <project_name>-<environment>


def _tsv_rows(name: str) -> list[list[str]]:
    rows = []
    for line in spec_path(name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.split("\t"))
    return rows


def hcl_count_rows() -> list[tuple[str, str]]:
    """hcl-deployment-addresses.tsv as (address, count expression)."""
    return [(r[0], (r + [""])[1].strip()) for r in _tsv_rows("hcl-deployment-addresses.tsv")]


def identity_rows() -> list[tuple[str, str, str]]:
    """hcl-deployment-identity.tsv as (address, attribute, value), minus its header row."""
    return [(r[0], r[1], r[2]) for r in _tsv_rows("hcl-deployment-identity.tsv") if r[0] != "hcl_address"]


def deployed_variables() -> dict[str, Any]:
    """The inputs the facts' deployment was applied with (environments/dev).

    monitoring_interval is read from the facts: the deployed database has
    monitoring_interval 0, and the state holds no rds_enhanced_monitoring role.
    enable_https likewise: the deployed listener is plain HTTP.
    """
    facts = facts_state()
    db = facts["module.database.aws_db_instance.mlflow"]
    listener = facts["module.mlflow.aws_lb_listener.mlflow"]
    return {
        "public_subnets": ["10.0.1.0/24", "10.0.2.0/24"],
        "private_subnets": ["10.0.11.0/24", "10.0.12.0/24"],
        "database_subnets": ["10.0.21.0/24", "10.0.22.0/24"],
        "enable_nat_gateway": True,
        "enable_vpc_endpoints": True,
        "enable_elasticache": True,
        "monitoring_interval": db["monitoring_interval"],
        "enable_https": listener["protocol"] == "HTTPS",
        "slack_webhook_url": "",
    }


def eval_count(expression: str, variables: dict[str, Any]) -> int | None:
    """Evaluate one count expression of the addresses table (None: no count)."""
    if not expression:
        return None
    m = re.fullmatch(r"(.+?)\s*\?\s*(.+?)\s*:\s*(.+)", expression)
    if m:
        cond, then, other = m.groups()
        return eval_count(then if _eval_condition(cond, variables) else other, variables)
    m = re.fullmatch(r"length\(var\.(\w+)\)", expression)
    if m:
        return len(variables[m.group(1)])
    if re.fullmatch(r"\d+", expression):
        return int(expression)
    raise ValueError(f"count expression not understood: {expression!r}")


def _eval_condition(cond: str, variables: dict[str, Any]) -> bool:
    m = re.fullmatch(r"var\.(\w+)", cond)
    if m:
        return bool(variables[m.group(1)])
    m = re.fullmatch(r'var\.(\w+)\s*(!=|==|>|<|>=|<=)\s*("[^"]*"|\d+)', cond)
    if m:
        left, op, right = variables[m.group(1)], m.group(2), json.loads(m.group(3))
        return {"!=": left != right, "==": left == right, ">": left > right, "<": left < right,
                ">=": left >= right, "<=": left <= right}[op]
    raise ValueError(f"count condition not understood: {cond!r}")


def expanded_hcl_addresses(variables: dict[str, Any] | None = None) -> set[str]:
    """Every instance address of the HCL deployment, counts expanded."""
    variables = deployed_variables() if variables is None else variables
    out = set()
    for address, count in hcl_count_rows():
        n = eval_count(count, variables)
        if n is None:
            out.add(address)
        else:
            out.update(f"{address}[{i}]" for i in range(n))
    return out


def expected_fixture_addresses() -> set[str]:
    return expanded_hcl_addresses() - set(OMITTED)


def _substitute(value: str) -> str:
    return (value.replace("{p}", PROJECT_PREFIX)
            .replace("<random_id.bucket_suffix hex>", RANDOM_SUFFIX_STANDIN))


_REFERENCE_TYPES = {"(subnet id)": "aws_subnet", "(the policy above)": "aws_iam_policy",
                    "(the role above)": "aws_iam_role"}


def identity_failures(resources: dict[str, dict[str, Any]]) -> list[str]:
    """Every row of hcl-deployment-identity.tsv, checked against resources.

    'name_prefix X': the name starts with X and name_prefix is X.
    '(empty: not set)': empty or null.
    '(subnet id)', '(the policy above)', '(the role above)': the attribute holds
    the id / arn / name of the same resource (by address) it holds in the facts'
    state, a resource of the named type.
    Anything else: the value, with {p} and the bucket suffix substituted.
    """
    facts = facts_state()
    failures = []
    for address, attribute, raw in identity_rows():
        if address not in resources:
            failures.append(f"{address}: missing (identity row {attribute})")
            continue
        got = resources[address].get(attribute)
        if raw.startswith("name_prefix "):
            prefix = _substitute(raw[len("name_prefix "):])
            if not (isinstance(got, str) and got.startswith(prefix)) \
                    or resources[address].get("name_prefix") != prefix:
                failures.append(f"{address}.{attribute} = {got!r}, name_prefix = "
                                f"{resources[address].get('name_prefix')!r}; expected name_prefix {prefix!r}")
        elif raw == "(empty: not set)":
            if got not in ("", None):
                failures.append(f"{address}.{attribute} = {got!r}; expected empty (not set)")
        elif raw in _REFERENCE_TYPES:
            target = _referenced(facts, address, attribute, _REFERENCE_TYPES[raw])
            if target is None:
                failures.append(f"{address}.{attribute}: the facts' value refers to no {_REFERENCE_TYPES[raw]}")
                continue
            target_address, key = target
            want = resources.get(target_address, {}).get(key)
            if got != want or not got:
                failures.append(f"{address}.{attribute} = {got!r}; expected {target_address}.{key} = {want!r}")
        else:
            want = _substitute(raw)
            if got != want:
                failures.append(f"{address}.{attribute} = {got!r}; expected {want!r}")
    return failures


def _referenced(facts: dict[str, dict[str, Any]], address: str, attribute: str,
                rtype: str) -> tuple[str, str] | None:
    """(address, key) of the rtype resource whose id / arn / name the facts' value is."""
    value = facts[address][attribute]
    for other, attrs in sorted(facts.items()):
        if other != address and _rtype(other) == rtype:
            for key in ("id", "arn", "name"):
                if attrs.get(key) == value:
                    return other, key
    return None


def _rtype(address: str) -> str:
    return re.sub(r"\[\d+\]$", "", address).split(".")[-2]


# Emulator-generated values: the same resource gets a different id, ARN, IP,
# generated name suffix or DNS label on every apply. Before comparing, each such
# token is replaced by the address of the resource it identifies in the same
# state ("<module.networking.aws_subnet.public[0]>"), or by "<generated>" when it
# identifies no resource. References therefore compare by what they point at.
_TOKEN_PATTERNS = [
    r"\b(?:vpc|subnet|sg|igw|nat|eipalloc|eipassoc|eni|rtb|rtbassoc|acl|lt|vpce|pl|key|sgr)-[0-9a-f]{8,17}\b",
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",  # KMS keys, ASG / policy ARNs
    r"20\d{16}[0-9a-f]{8}\b",                                             # name_prefix suffixes
    r"(?<=/)[0-9a-f]{16}\b",                                              # ELBv2 ARNs
    r"\bdb-[A-Z0-9]{26}\b",                                               # RDS resource ids
    r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d./])",                       # IPs (not CIDRs)
    r"(?<=ip-)\d+-\d+-\d+-\d+|(?<=ec2-)\d+-\d+-\d+-\d+",                  # IPs in DNS names
    r"(?<=\.)[a-z0-9]{6}(?=\.use1\.cache\.amazonaws\.com)",               # ElastiCache endpoints
]
_TOKEN_RE = re.compile("|".join(f"(?:{p})" for p in _TOKEN_PATTERNS))

# Whole values that are generated (no reference meaning), by attribute name,
# and by (resource type, attribute name).
_GENERATED_KEYS = {"unique_id", "policy_id", "create_date", "latest_restorable_time"}
_GENERATED_TYPE_KEYS = {("aws_vpc_endpoint", "dns_entry")}  # random DNS label and zone id

# The resource's own identifiers, in the order that decides which resource a
# token belongs to (an allocation id is the EIP's before it is the NAT's).
_OWN_ID_KEYS = ("id", "arn", "key_id", "allocation_id", "association_id", "network_interface_id",
                "network_interface", "key_pair_id", "resource_id", "name", "arn_suffix",
                "prefix_list_id", "private_ip", "public_ip", "private_dns", "public_dns",
                "default_route_table_id", "default_network_acl_id", "default_security_group_id",
                "main_route_table_id", "primary_endpoint_address", "address", "endpoint", "dns_name")

# Generated values the owner index cannot place (interface endpoint ENIs and
# their IPs, the endpoint's DNS names): compared as "<generated>".
_UNOWNED_OK = "<generated>"


def _owners(resources: dict[str, dict[str, Any]]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for key in _OWN_ID_KEYS:
        for address in sorted(resources):
            value = resources[address].get(key)
            if isinstance(value, str):
                for token in _TOKEN_RE.findall(value):
                    owners.setdefault(token, address)
    return owners


def _normalize(value: Any, owners: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _TOKEN_RE.sub(lambda m: f"<{owners[m.group(0)]}>" if m.group(0) in owners else _UNOWNED_OK,
                             value)
    if isinstance(value, list):
        items = [_normalize(v, owners) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {k: _normalize(v, owners) for k, v in value.items()}
    return value


def _not_recorded(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("(") and (
        "omitted" in value or "not recorded" in value)


def attribute_mismatches(resources: dict[str, dict[str, Any]],
                         only: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Attributes of the facts' state that resources record differently.

    Compares every attribute the facts record (or only the given ones, by
    address), after replacing emulator-generated tokens by the address of the
    resource they identify. Skips what the facts do not record (scripts, policy
    documents, secrets) and timestamps / IAM unique ids.
    """
    facts = facts_state()
    facts_owners, our_owners = _owners(facts), _owners(resources)
    out = []
    for address in sorted(facts if only is None else only):
        if address not in resources:
            out.append(f"{address}: missing")
            continue
        keys = facts[address].keys() if only is None else only[address]
        for key in keys:
            want = facts[address][key]
            if _not_recorded(want) or key in _GENERATED_KEYS or (_rtype(address), key) in _GENERATED_TYPE_KEYS:
                continue
            got = resources[address].get(key, "<absent>")
            also_ok = EMULATOR_READBACK.get((_rtype(address), key))
            if also_ok is not None and got == also_ok[0]:
                continue
            if _normalize(want, facts_owners) != _normalize(got, our_owners):
                out.append(f"{address}.{key}: facts {json.dumps(want)[:300]} != fixture {json.dumps(got)[:300]}")
    return out


# --------------------------------------------------------------------------- the applied fixture

# Attributes a re-plan of the applied fixture updates in place, because moto
# reads them back differently from what was sent. The facts' state holds the
# same read-back values (checked below), so the HCL deployment has them too.
#   aws_autoscaling_policy: moto's DescribePolicies returns no Enabled, so the
#     state reads enabled = false and an empty predictive_scaling_configuration.
#   aws_elasticache_replication_group.maintenance_window: moto echoes the
#     configured "Sun:07:00-Sun:09:00"; the provider plans it lowercased.
MOTO_READBACK_UPDATES = {
    "aws_autoscaling_policy": {"enabled", "predictive_scaling_configuration"},
    "aws_elasticache_replication_group": {"maintenance_window"},
}


# The attributes the brief names, compared with hcl-deployment-state.json's values.
SELECTED = {
    "module.database.aws_db_instance.mlflow": (
        "engine", "engine_version", "instance_class", "allocated_storage", "max_allocated_storage",
        "storage_type", "storage_encrypted", "kms_key_id", "db_name", "username", "port",
        "parameter_group_name", "db_subnet_group_name", "vpc_security_group_ids",
        "backup_retention_period", "monitoring_interval", "multi_az", "publicly_accessible"),
    "module.database.aws_db_parameter_group.mlflow": ("name", "family", "parameter"),
    "module.database.aws_elasticache_replication_group.mlflow[0]": (
        "node_type", "engine", "engine_version", "at_rest_encryption_enabled", "transit_encryption_enabled",
        "kms_key_id", "num_cache_clusters", "port", "security_group_ids", "log_delivery_configuration"),
    "module.security.aws_security_group.alb": ("ingress", "egress", "vpc_id"),
    "module.security.aws_security_group.mlflow_app": ("ingress", "egress", "vpc_id"),
    "module.security.aws_security_group.database": ("ingress", "egress", "vpc_id"),
    "module.security.aws_security_group.elasticache": ("ingress", "egress", "vpc_id"),
    "module.networking.aws_security_group.vpc_endpoints[0]": ("ingress", "egress", "vpc_id"),
    "module.mlflow.aws_s3_bucket.mlflow_artifacts": ("bucket", "versioning", "server_side_encryption_configuration"),
    "module.mlflow.aws_s3_bucket.alb_logs": ("bucket", "server_side_encryption_configuration"),
    "module.mlflow.aws_lb.mlflow": ("name", "internal", "access_logs", "subnets", "security_groups"),
    "module.mlflow.aws_lb_listener.mlflow": ("port", "protocol", "default_action"),
    "module.mlflow.aws_lb_target_group.mlflow": ("name", "port", "protocol", "health_check", "stickiness"),
    "module.mlflow.aws_launch_template.mlflow": (
        "image_id", "instance_type", "key_name", "block_device_mappings", "metadata_options",
        "iam_instance_profile", "vpc_security_group_ids"),
    "module.mlflow.aws_autoscaling_group.mlflow": (
        "min_size", "max_size", "desired_capacity", "health_check_type", "vpc_zone_identifier",
        "target_group_arns", "launch_template", "tag"),
    "aws_key_pair.mlflow_key": ("key_name", "public_key", "fingerprint"),
    "aws_sns_topic.alerts": ("name", "kms_master_key_id"),
}


def check_applied_fixture(workdir: Path) -> tuple[int, dict[str, float]]:
    """Assert that the fixture applied in workdir is the HCL deployment: (a) its addresses,
    (b) every identity row, (c) the selected and then every recorded attribute of the facts'
    state, (d) a re-plan that changes only moto's read-back quirks. Returns the phases' timings."""
    resources = hcl_state_resources(workdir)
    timings = json.loads((workdir / "timings.json").read_text())
    ours, expected = set(resources), expected_fixture_addresses()
    assert not expected - ours, f"missing: {sorted(expected - ours)}"
    assert not ours - expected, f"unexpected: {sorted(ours - expected)}"
    assert len(identity_rows()) > 60
    failures = identity_failures(resources)
    assert not failures, "identity rows that do not hold:\n" + "\n".join(failures)
    mismatches = attribute_mismatches(resources, only=SELECTED)
    assert not mismatches, "\n".join(mismatches)
    # Every attribute hcl-deployment-state.json records (ids, ARNs, IPs and
    # generated name suffixes compared by the resource they identify).
    mismatches = attribute_mismatches(resources)
    assert not mismatches, "\n".join(mismatches)
    timings["replan"] = _replan_changes_only_the_emulators_readback_quirks(workdir)
    return len(resources), timings


def _replan_changes_only_the_emulators_readback_quirks(workdir: Path) -> float:
    env = terraform_env(workdir)
    start = time.monotonic()
    terraform(workdir, "plan", "-input=false", "-no-color", "-out=replan.tfplan", env=env)
    seconds = round(time.monotonic() - start, 1)
    plan = json.loads(terraform(workdir, "show", "-json", "replan.tfplan", env=env).stdout)
    facts = facts_state()
    unexpected = []
    for rc in plan.get("resource_changes", []):
        actions, change = rc["change"]["actions"], rc["change"]
        if actions == ["no-op"]:
            continue
        before, after = change.get("before") or {}, change.get("after") or {}
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        allowed = MOTO_READBACK_UPDATES.get(rc["type"], set())
        if actions != ["update"] or not changed <= allowed:
            unexpected.append(f"{rc['address']}: {actions} {sorted(changed)}")
            continue
        for key in changed:  # the facts' state read back the same value
            assert facts[rc["address"]][key] == before[key], (rc["address"], key)
    assert not unexpected, "re-plan changes beyond moto's read-back quirks:\n" + "\n".join(unexpected)
    return seconds
