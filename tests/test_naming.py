"""The one naming mechanism: construct id = Terraform address, duplicates refused."""
from __future__ import annotations

import pytest
from cdktf import Testing
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from constructs import Construct

from modules.base import AddressedStack


def stack_with(*builders) -> AddressedStack:
    app = Testing.app()
    stack = AddressedStack(app, "t")
    AwsProvider(stack, "aws", region="us-east-1")
    for i, build in enumerate(builders):
        build(Construct(stack, f"m{i}"))
    return stack


def test_nested_construct_keeps_its_exact_address():
    stack = stack_with(lambda m: SecurityGroup(m, "aws_security_group.alb"))
    assert '"alb": {' in Testing.synth(stack, run_validations=True)


def test_two_modules_defining_one_address_fail_the_synth():
    stack = stack_with(lambda m: SecurityGroup(m, "aws_security_group.alb"),
                       lambda m: SecurityGroup(m, "aws_security_group.alb"))
    with pytest.raises(RuntimeError, match="aws_security_group.alb is defined twice"):
        Testing.synth(stack, run_validations=True)


def test_construct_id_of_the_wrong_type_fails():
    stack = stack_with(lambda m: SecurityGroup(m, "aws_vpc.alb"))
    with pytest.raises(RuntimeError, match="must be 'aws_security_group.<name>'"):
        Testing.synth(stack, run_validations=True)


def test_override_logical_id_cannot_rename_behind_the_scheme():
    def build(m):
        SecurityGroup(m, "aws_security_group.alb").override_logical_id("renamed")
    with pytest.raises(RuntimeError, match="does not come from its construct id"):
        Testing.synth(stack_with(build), run_validations=True)


def test_app_synth_runs_the_guard(tmp_path):
    from cdktf import App
    app = App(outdir=str(tmp_path))
    stack = AddressedStack(app, "t")
    AwsProvider(stack, "aws", region="us-east-1")
    SecurityGroup(Construct(stack, "a"), "aws_security_group.x")
    SecurityGroup(Construct(stack, "b"), "aws_security_group.x")
    with pytest.raises(RuntimeError, match="defined twice"):
        app.synth()


@pytest.mark.parametrize("config", ["default", "second"])
def test_every_address_leads_to_the_file_that_makes_it(config, request):
    """README's promise: tools/where.py names, for any address, a module file that creates it."""
    import json

    from tools.where import where
    from tests.support import SECOND_CONFIG, settings_for
    from main import MlflowStack

    settings = settings_for(**({} if config == "default" else SECOND_CONFIG))
    stack = MlflowStack(Testing.app(), settings)
    table = where(stack)
    synthesized = json.loads(Testing.synth(stack))
    addresses = {f"{t}.{n}" for t, items in synthesized["resource"].items() for n in items}
    assert addresses <= set(table), addresses - set(table)
    root = __import__("tests.support", fromlist=["ROOT"]).ROOT
    for address in addresses:
        path, construct_path = table[address]
        source = (root / path).read_text()
        rtype, name = address.split(".")
        cls = type(next(e for e in stack.elements() if e.node.path == construct_path)).__name__
        # the file builds that resource class itself, or declares the rule (modules/sg_rules.py builds it)
        assert cls in source or ("Rule(" in source and "security_group" in rtype), f"{address}: {path} has no {cls}"
        assert construct_path.endswith(address), construct_path
