"""The lazy provider import synthesizes byte-identical JSON to the eager import."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

SECOND_TOML = (
    'environment = "second"\ndb_engine = "postgres"\naz_count = 3\nnat_gateway_mode = "single"\n'
    'certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"\n'
)


def synth_in(tmp, eager: bool, settings_text: str | None) -> bytes:
    env = dict(os.environ, MLFLOW_SETTINGS_DIR=str(tmp / "settings"))
    (tmp / "settings").mkdir(parents=True, exist_ok=True)
    if settings_text:
        (tmp / "settings" / "s.toml").write_text(settings_text)
    env.pop("MLFLOW_EAGER_PROVIDER_IMPORT", None)
    if eager:
        env["MLFLOW_EAGER_PROVIDER_IMPORT"] = "1"
    probe = ("import sys; sys.path.insert(0, %r); import main; "
             "import cdktf_cdktf_provider_aws as p; print(len(p.__dict__))" % str(ROOT))
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=tmp, env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    n_attrs = int(loaded.stdout.split()[-1])
    # eager: the package __init__ ran and bound ~2,100 submodules; lazy: only a handful
    assert (n_attrs > 1000) if eager else (n_attrs < 200), n_attrs
    proc = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (stack,) = (tmp / "cdktf.out" / "stacks").iterdir()
    return (stack / "cdk.tf.json").read_bytes()


@pytest.mark.parametrize("settings_text", [None, SECOND_TOML], ids=["default", "second"])
def test_lazy_and_eager_imports_synthesize_identical_json(tmp_path, settings_text):
    lazy = synth_in(tmp_path / "lazy", False, settings_text)
    eager = synth_in(tmp_path / "eager", True, settings_text)
    # The local backend path names the output folder; normalize only that.
    lazy = lazy.replace(str(tmp_path / "lazy").encode(), b"X")
    eager = eager.replace(str(tmp_path / "eager").encode(), b"X")
    assert hashlib.sha256(lazy).hexdigest() == hashlib.sha256(eager).hexdigest()
