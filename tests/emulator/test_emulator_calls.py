"""The emulator's front (tests/emulator/server.py): an SDK retry of a call moto already
answered gets the first answer again, so a lost response never makes a second resource."""
from __future__ import annotations

import urllib.request

import pytest

pytestmark = pytest.mark.emulator


def _send(moto_server, request, attempt: int) -> bytes:
    """Send a request botocore prepared again, as the SDK's retry would (same invocation id)."""
    headers = {k: v for k, v in request.headers.items()}
    headers["amz-sdk-request"] = f"attempt={attempt}; max=25"
    body = request.body.encode() if isinstance(request.body, str) else request.body
    again = urllib.request.Request(request.url, data=body, headers=headers, method=request.method)
    with urllib.request.urlopen(again, timeout=30) as response:
        return response.read()


def test_a_retried_create_moto_already_made_is_answered_not_made_twice(moto_server):
    ec2 = moto_server.client("ec2")
    sent = []
    ec2.meta.events.register("before-send.ec2.CreateInternetGateway", lambda request, **_: sent.append(request))
    first = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    assert "amz-sdk-invocation-id" in {k.lower() for k in sent[0].headers}

    retried = _send(moto_server, sent[0], attempt=2)  # the SDK's retry after a lost answer
    assert first.encode() in retried
    assert [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]] == [first]
    assert "replayed (attempt 2" in moto_server.log.read_text()


def test_a_new_invocation_is_a_new_call(moto_server):
    ec2 = moto_server.client("ec2")
    ec2.create_internet_gateway()
    ec2.create_internet_gateway()
    assert len(ec2.describe_internet_gateways()["InternetGateways"]) == 2
