"""`cdktf synth` (the CLI pinned in package.json) writes the same JSON as README's synth command."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT

CLI = ROOT / "node_modules" / ".bin" / "cdktf"


@pytest.mark.skipif(not CLI.exists() and not os.environ.get("CI"), reason="npm ci not run")
def test_cdktf_synth_equals_the_readme_synth(tmp_path):
    # As from a user's shell: cdktf.json runs `python3 -m pipenv run ...`, so python3 must be
    # the interpreter pipenv is installed for, not this test's virtualenv.
    venv_bin = os.path.dirname(sys.executable)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env = dict(os.environ, PATH=path, CHECKPOINT_DISABLE="1", PIPENV_VENV_IN_PROJECT="1", CI="1")
    env.pop("VIRTUAL_ENV", None)
    env.pop("PIPENV_ACTIVE", None)
    for var in ("MLFLOW_SETTINGS", "MLFLOW_SETTINGS_DIR", "CDKTF_OUTDIR", "MLFLOW_EAGER_PROVIDER_IMPORT"):
        env.pop(var, None)
    cli = subprocess.run([str(CLI), "synth", "--output", str(tmp_path / "cli")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    direct = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=dict(env, CDKTF_OUTDIR=str(tmp_path / "py")),
                            capture_output=True, text=True, timeout=600)
    assert direct.returncode == 0, direct.stderr
    cli_stacks = sorted(p.name for p in (tmp_path / "cli" / "stacks").iterdir())
    assert cli_stacks == sorted(p.name for p in (tmp_path / "py" / "stacks").iterdir()) and cli_stacks
    for stack in cli_stacks:
        a = (tmp_path / "cli" / "stacks" / stack / "cdk.tf.json").read_bytes()
        b = (tmp_path / "py" / "stacks" / stack / "cdk.tf.json").read_bytes()
        assert a == b, stack
