"""Shared test helpers: synthesize a configuration once, and run real Terraform on it."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import modules  # noqa: F401  (Node 22 + lazy provider import before cdktf loads)
from cdktf import Testing

from main import MlflowStack
from modules.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
# Names the folder every pytest-xdist worker of one run shares (tests/conftest.py makes it and names
# it by the same variable): synthesized stacks are kept there for the other workers.
SHARED_DIR_VARIABLE = "MLFLOW_TESTS_SHARED_DIR"
PLUGIN_MIRROR = Path(os.environ.get("MLFLOW_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))

# The hashicorp/random provider cannot be downloaded on these machines and the
# offline mirror holds only hashicorp/aws. So Terraform-facing tests run on a
# copy of the synthesized JSON in which random_id.bucket_suffix is removed and
# every reference to its hex is replaced by this fixed value. Nothing else
# changes, and the product's JSON (cdktf.out) keeps random_id.
RANDOM_SUFFIX_STANDIN = "0a1b2c3d"

# The second configuration of the issues: postgres, 3 AZs, single NAT, HTTPS.
SECOND_CONFIG: dict[str, Any] = {
    "environment": "second",
    "db_engine": "postgres",
    "az_count": 3,
    "nat_gateway_mode": "single",
    "certificate_arn": "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
}


# Chat alerts to a Slack channel through AWS Chatbot, in its own region (docs/observability.md).
SLACK_CHAT: dict[str, Any] = {"platform": "slack", "channel_id": "C0123ABCD", "team_id": "T0123ABCD",
                              "region": "eu-west-1"}


# HTTPS from a domain name (docs/access.md).
DOMAIN_CONFIG: dict[str, Any] = {
    "environment": "domain", "domain_name": "mlflow.example.com", "route53_zone_id": "Z0123456789ABCDEFGHIJ",
}


def doc_toml_blocks(path: Path) -> list[str]:
    """The ```toml blocks of a Markdown page, as written."""
    return re.findall(r"```toml\n(.*?)```", path.read_text(), re.S)


# The adoption settings docs/adoption.md tells users to write (its first toml block).
HCL_ADOPTION: dict[str, Any] = tomllib.loads(doc_toml_blocks(ROOT / "docs" / "adoption.md")[0])


def settings_for(**overrides: Any) -> Settings:
    return load_settings(None, **overrides)


def synth_json(settings: Settings) -> dict:
    """Synthesize one stack in memory (with the stack's address validations)."""
    return json.loads(synth_text(settings))


@functools.lru_cache(maxsize=None)
def _synth_cached(settings_json: str) -> str:
    shared = os.environ.get(SHARED_DIR_VARIABLE)
    path = Path(shared) / f"synth-{hashlib.sha256(settings_json.encode()).hexdigest()[:24]}.json" if shared else None
    if path and path.exists():
        return path.read_text()
    s = Settings.model_validate_json(settings_json)
    app = Testing.app()
    stack = MlflowStack(app, s)
    text = Testing.synth(stack, run_validations=True)
    if path:  # atomically: a worker reading it never sees half a file
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return text


def synth_text(settings: Settings) -> str:
    """Synthesized JSON text; each distinct configuration is synthesized once per run: kept in
    memory, and in the folder the run's workers share (tests/conftest.py) for the other workers."""
    return _synth_cached(settings.model_dump_json())


def run_main(cwd: Path, settings_files: dict[str, str] | None = None, **env_overrides: str
             ) -> subprocess.CompletedProcess:
    """Run main.py as users do, in cwd, with exactly these files in its settings folder."""
    settings = cwd / "settings"
    settings.mkdir(parents=True, exist_ok=True)
    for name, text in (settings_files or {}).items():
        (settings / name).write_text(text)
    env = dict(os.environ, MLFLOW_SETTINGS_DIR=str(settings), **env_overrides)
    env.pop("MLFLOW_SETTINGS", None)
    env.pop("CDKTF_OUTDIR", None)
    return subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def terraform_copy(stack_json: dict, workdir: Path, *, keep_backend: bool = False) -> Path:
    """Write the Terraform-facing copy of a stack into workdir (see RANDOM_SUFFIX_STANDIN)."""
    text = json.dumps(stack_json).replace("${random_id.bucket_suffix.hex}", RANDOM_SUFFIX_STANDIN)
    data = json.loads(text)
    data["resource"].pop("random_id")
    data["terraform"]["required_providers"].pop("random")
    data["provider"].pop("random")
    if not keep_backend:
        data["terraform"].pop("backend", None)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "main.tf.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def terraform_env(workdir: Path) -> dict[str, str]:
    """Environment for the terraform CLI: offline provider mirror only, no prompts."""
    rc = workdir / "terraformrc"
    rc.write_text(
        'provider_installation {\n'
        f'  filesystem_mirror {{\n    path = "{PLUGIN_MIRROR}"\n    include = ["registry.terraform.io/*/*"]\n  }}\n'
        '}\n'
    )
    env = dict(os.environ)
    env.update({
        "TF_CLI_CONFIG_FILE": str(rc),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
        "TF_PLUGIN_CACHE_DIR": "",
    })
    # Terraform and the AWS provider are Go: collecting garbage less often cuts their CPU time by
    # about a fifth (plan of the default stack: 9.8 -> 7.5 CPU s) for about 110 MB more each
    # (docs/tests.md, "Test time"). A GOGC of the caller's own wins.
    env.setdefault("GOGC", "400")
    return env


def terraform(workdir: Path, *args: str, env: dict[str, str] | None = None, check: bool = True,
              timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real terraform CLI in workdir (pass -no-color yourself where the command takes it)."""
    exe = shutil.which("terraform") or "/usr/local/bin/terraform"
    proc = subprocess.run(
        [exe, *args], cwd=workdir, env=env or terraform_env(workdir),
        capture_output=True, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"terraform {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
