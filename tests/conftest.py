"""Test tiers. Plain tests are the unit suite (in-memory synth); the others are marked.

- terraform: real `terraform init/validate` on the synthesized JSON (offline mirror)
- emulator:  plan/apply/re-plan/destroy against moto on 127.0.0.1 (tests/emulator)
- runtime:   the real MLflow server behind nginx on 127.0.0.1 (tests/runtime)
- policy:    checkov on the synthesized JSON, with the checked-in skip file
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture(scope="session")
def default() -> dict:
    """The default stack, synthesized once per session."""
    from tests.support import settings_for, synth_json
    return synth_json(settings_for())


@pytest.fixture(scope="session")
def second() -> dict:
    """The second configuration (postgres, 3 AZs, single NAT, HTTPS), synthesized once."""
    from tests.support import SECOND_CONFIG, settings_for, synth_json
    return synth_json(settings_for(**SECOND_CONFIG))


def pytest_configure(config):
    for marker, text in {
        "terraform": "runs the real terraform CLI on synthesized JSON",
        "emulator": "deploys to an AWS emulator (moto) on loopback",
        "runtime": "runs MLflow, nginx and databases on loopback",
        "policy": "runs the checkov policy scanner on synthesized JSON",
    }.items():
        config.addinivalue_line("markers", f"{marker}: {text}")
