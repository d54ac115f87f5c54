"""Test tiers. Plain tests are the unit suite (in-memory synth); the others are marked.

- terraform: real `terraform init/validate` on the synthesized JSON (offline mirror)
- emulator:  plan/apply/re-plan/destroy against moto on 127.0.0.1 (tests/emulator)
- runtime:   the real MLflow server behind nginx on 127.0.0.1 (tests/runtime)
- policy:    checkov on the synthesized JSON, with the checked-in skip file
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def pytest_configure(config):
    for marker, text in {
        "terraform": "runs the real terraform CLI on synthesized JSON",
        "emulator": "deploys to an AWS emulator (moto) on loopback",
        "runtime": "runs MLflow, nginx and databases on loopback",
        "policy": "runs the checkov policy scanner on synthesized JSON",
    }.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
