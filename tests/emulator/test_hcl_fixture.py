"""The public HCL deployment as an emulator fixture (tests/emulator/hcl_deployment): the
checks of the fixture against the facts in shared/spec (or their vendored copies in
tests/spec), on the facts themselves.

The applied fixture is checked by test_adopt_hcl.py, which applies it anyway before adopting
it (hcl_fixture.check_applied_fixture): (a) the addresses, (b) every identity row, (c) the
other attributes the facts' state records, then a re-plan that changes nothing but the
emulator's known read-back quirks, which the facts' state shows too.

Run: .venv/bin/python -m pytest tests/emulator/test_hcl_fixture.py -q
"""
from __future__ import annotations

import json

import pytest

from tests.emulator.hcl_fixture import (
    OMITTED,
    SHARED_SPEC,
    VENDORED_SPEC,
    attribute_mismatches,
    expanded_hcl_addresses,
    expected_fixture_addresses,
    facts_state,
    identity_failures,
)

SPEC_FILES = ("hcl-deployment-addresses.tsv", "hcl-deployment-identity.tsv", "hcl-deployment-state.json")


# --------------------------------------------------------------------------- unit tier


@pytest.mark.parametrize("name", SPEC_FILES)
def test_vendored_spec_files_are_the_shared_ones(name):
    if not (SHARED_SPEC / name).exists():
        pytest.skip("shared/spec is not beside this checkout")
    assert (VENDORED_SPEC / name).read_text() == (SHARED_SPEC / name).read_text()


def test_omitted_addresses_are_hcl_addresses_missing_from_the_facts_state():
    facts = facts_state()
    hcl = expanded_hcl_addresses()
    for address in OMITTED:
        assert address in hcl and address not in facts, address


def test_expected_addresses_are_the_facts_state_addresses():
    # The count expansion with the deployed inputs gives exactly what the facts' state holds.
    assert expected_fixture_addresses() == set(facts_state())


def test_the_checks_hold_on_the_facts_state_itself():
    facts = facts_state()
    assert identity_failures(facts) == []
    assert attribute_mismatches(facts) == []


def test_identity_checks_catch_a_wrong_value():
    facts = json.loads(json.dumps(facts_state()))
    facts["module.networking.aws_subnet.public[0]"]["cidr_block"] = "10.0.99.0/24"
    facts["module.networking.aws_nat_gateway.main[1]"]["subnet_id"] = \
        facts["module.networking.aws_subnet.public[0]"]["id"]
    facts["module.mlflow.aws_launch_template.mlflow"]["name_prefix"] = "mlflow-dev-l"
    failures = "\n".join(identity_failures(facts))
    assert "aws_subnet.public[0].cidr_block" in failures
    assert "aws_nat_gateway.main[1].subnet_id" in failures
    assert "aws_launch_template.mlflow.name" in failures
