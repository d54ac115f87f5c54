"""Issue #14: after destroy, a second internet gateway, never in state, was left behind.

That happens when moto answers CreateInternetGateway with an error after it has
created the gateway: the provider retries a 5xx (aws-sdk-go-v2's standard
retryer), creates a second gateway and keeps that one. A slow answer does not
do it (the provider's HTTP client has no response timeout). moto's server
handled requests on threads without a lock, and rendering the
CreateInternetGateway response scans moto's whole EC2 tag table; a concurrent
request that adds a tag makes that scan raise "dictionary changed size during
iteration" (HTTP 500). The flake's moto log was not kept: this is the race
found in moto's code, made deterministic.

The fault igw-tag-race (moto_extensions.py) forces the interleaving, and this
apply creates the gateway and a tag on its VPC (aws_ec2_tag) at the same time.
The fix is the extension server_one_request_at_a_time; to see this test fail,
run it with EMULATOR_WITHOUT=server_one_request_at_a_time.
"""
from __future__ import annotations

import json

import pytest

from tests.emulator.conftest import start_moto, stop_moto
from tests.emulator.harness import Terraform, emulator_settings
from tests.support import synth_json

pytestmark = pytest.mark.emulator


def test_a_concurrent_tag_write_does_not_create_a_second_internet_gateway(emulator_tools, tmp_path):
    server = start_moto(tmp_path / "moto.log", env={"EMULATOR_FAULT": "igw-tag-race"})
    try:
        stack = synth_json(emulator_settings({}, server))
        config = {  # the product's provider block and gateway, a bare VPC, a tag write on the VPC
            "terraform": {"required_providers": {"aws": stack["terraform"]["required_providers"]["aws"]}},
            "provider": {"aws": [p for p in stack["provider"]["aws"] if not p.get("alias")]},
            "resource": {
                "aws_vpc": {"main": {"cidr_block": "10.0.0.0/16"}},
                "aws_internet_gateway": {"main": stack["resource"]["aws_internet_gateway"]["main"]},
                "aws_ec2_tag": {"race": {"resource_id": "${aws_vpc.main.id}", "key": "Race", "value": "1"}},
            },
        }
        workdir = tmp_path / "tf"
        workdir.mkdir()
        (workdir / "main.tf.json").write_text(json.dumps(config, indent=2))
        tf = Terraform(workdir)
        tf("init", "init", "-input=false")
        tf("apply", "apply", "-input=false", "-auto-approve")

        log = server.log.read_text()
        # Both sides of the forced interleaving ran (else this test proves nothing).
        assert "igw-tag-race: scan paused" in log and "igw-tag-race: CreateTags handled" in log, log[-4000:]
        resources = json.loads(tf("show", "show", "-json").stdout)["values"]["root_module"]["resources"]
        in_state = [r["values"]["id"] for r in resources if r["type"] == "aws_internet_gateway"]
        in_emulator = [g["InternetGatewayId"] for g in
                       server.client("ec2").describe_internet_gateways()["InternetGateways"]]
        assert sorted(in_emulator) == in_state, \
            f"internet gateways in the emulator: {in_emulator}; in state: {in_state}"
    finally:
        stop_moto(server)
