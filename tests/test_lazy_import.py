"""The lazy provider import synthesizes byte-identical JSON to the eager import."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT

# Both configurations in one settings folder: one process synthesizes both stacks.
SETTINGS = {
    "default.toml": "",
    "second.toml": (
        'environment = "second"\ndb_engine = "postgres"\naz_count = 3\nnat_gateway_mode = "single"\n'
        'certificate_arn = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"\n'
    ),
}
STACKS = ("mlflow-dev", "mlflow-second")

# Runs main.py's synth, then reports how many names the provider package holds.
PROBE = (
    "import sys; sys.path.insert(0, {root!r}); import main; "
    "rc = main.main(main.load_all(main.settings_sources(main.SETTINGS_DIR))); "
    "import cdktf_cdktf_provider_aws as p; print(len(p.__dict__)); sys.exit(rc)"
)


def synth_in(tmp, eager: bool) -> dict[str, bytes]:
    (tmp / "settings").mkdir(parents=True)
    for name, text in SETTINGS.items():
        (tmp / "settings" / name).write_text(text)
    env = dict(os.environ, MLFLOW_SETTINGS_DIR=str(tmp / "settings"))
    env.pop("MLFLOW_SETTINGS", None)
    env.pop("MLFLOW_EAGER_PROVIDER_IMPORT", None)
    if eager:
        env["MLFLOW_EAGER_PROVIDER_IMPORT"] = "1"
    proc = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    n_names = int(proc.stdout.split()[-1])
    # eager: the package __init__ ran and bound ~2,100 submodules; lazy: only the few we use
    assert (n_names > 1000) if eager else (n_names < 200), n_names
    out = {}
    for stack in STACKS:
        data = (tmp / "cdktf.out" / "stacks" / stack / "cdk.tf.json").read_bytes()
        out[stack] = data.replace(str(tmp).encode(), b"<dir>")  # the local backend path names the folder
    return out


def test_lazy_and_eager_imports_synthesize_identical_json(tmp_path):
    """One test for both stacks: parametrized, pytest-xdist would run the two synths per worker."""
    lazy, eager = synth_in(tmp_path / "lazy", False), synth_in(tmp_path / "eager", True)
    for stack in STACKS:
        assert len(lazy[stack]) > 10_000, stack
        assert lazy[stack] == eager[stack], stack
