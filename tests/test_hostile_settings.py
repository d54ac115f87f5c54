"""Hostile settings, property-based: every input is refused clearly or synthesizes safely.

For each generated set of overrides, ``load_settings(None, **example)`` either
raises SettingsError with a one-line message naming one of the given keys, or
it succeeds and the synthesized stack still has every address of the guide's
table and no user-supplied string appears in it as a live Terraform
interpolation (``${``/``%{`` not escaped as ``$${``/``%%{``).

Most fields are drawn from small pools of hostile values, so most examples are
refused by validation (cheap) and only a bounded number of distinct accepted
configurations are synthesized (each once, see tests.support.synth_text).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.base import literal
from modules.settings import Settings, SettingsError, load_settings
from tests.support import synth_text
from tests.test_stack import ROWS

MIN_EXAMPLES = 500
SOURCE = "the built-in defaults"  # load_settings(None, ...) names this source in its messages

# --- pools -------------------------------------------------------------------

INTERPOLATIONS = [
    "${var.ssh_public_key}", "${file(\"/etc/passwd\")}", "%{ if true }x%{ endif }", "${", "%{",
    "$${escaped}", "%%{escaped}", "\\${x}", "$\\{x}", "${jsonencode({a=1})}", "a${b}c", "${${x}}",
    "%{for x in [1]}${x}%{endfor}",
]
ODD_TEXT = [
    "", " ", "a\"b", "a'b", "a\nb", "a\r\nb", "a\\b", "a`b", "a;rm -rf /", "$(id)", "a\x00b", "\t",
    "é", "名前", "\u202eevil", "\u2028", "\x85", "emoji\U0001F600", "x" * 300, "y" * 5000,
    "aws:secret", "}", "{", "$", "%", "mlflow\n", "-mlflow", "MLflow", "a_b",
]
JUNK = [None, True, False, 0, -1, 2**63, -(2**63), 10**100, 1.5, math.inf, math.nan, [], {}, ["a"],
        {"a": 1}, b"bytes", "1", "true", "null"]

hostile_text = st.sampled_from(INTERPOLATIONS + ODD_TEXT)
junk = st.sampled_from(JUNK)
small_text = st.text(max_size=12)


def pool(valid: list[Any], *extra: st.SearchStrategy) -> st.SearchStrategy:
    """A value for one field: often valid, otherwise hostile text, junk or field-specific oddities."""
    return st.one_of(st.sampled_from(valid), st.sampled_from(valid), hostile_text, junk, small_text, *extra)


def int_pool(valid: list[int], edges: list[int]) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(valid), st.sampled_from(edges), st.integers(), junk,
                     st.sampled_from(["2", 2.0, True]))


CIDRS = ["0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/16", "10.0.0.0/16", "192.0.2.0/24", "198.51.100.7/32",
         "10.0.0.1/16", "1.2.3.4", "::/0", "2001:db8::/32", "10.0.0.0/33", " 10.0.0.0/16", "0/0",
         "10.0.0.0/16\n", "${var.cidr}", "256.0.0.0/8", "010.0.0.0/8"]
cidr_list = st.one_of(
    st.lists(st.sampled_from(CIDRS[:6]), max_size=3),
    st.lists(st.sampled_from(CIDRS), max_size=4),
    st.just([f"10.{i}.0.0/16" for i in range(21)]),
    junk,
)
TAG_KEYS = ["Team", "cost center", "a:b/c=d+e@f-g_h", "Name", "Environment", "Ünïcode", "aws:x", "AWS:x",
            "k" * 128, "k" * 129, "", "${var.x}", "%{x}", "a\"b", "a\nb", "a\\b", "a'b", "a$b", "{}"]
TAG_VALUES = ["", "ops", "ü ñ 名", "v" * 256, "v" * 257, "${var.x}", "%{ if 1 }", "a'b", "a\nb", "a\\b",
              "a\"b", 1, None, True, "=+@:/._- "]
tags = st.one_of(st.dictionaries(st.sampled_from(TAG_KEYS), st.sampled_from(TAG_VALUES), max_size=3),
                 st.dictionaries(small_text, small_text, max_size=2), junk)
SSH_KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host",
            "ssh-rsa AAAAB3NzaC1yc2E= name with spaces", "ssh-ed25519 AAAA ${var.x}", "ssh-ed25519 AAAA %{x}",
            "ssh-ed25519 AAAA a'b", "ssh-ed25519 AAAA ünï", "ssh-ed25519 AAAA a\nb", "ssh-dss AAAA",
            "ssh-ed25519 AAAA=\n", "ssh-ed25519 AAAA% 100%"]
EMAILS = ["ops@example.com", "a.b+c%d@example.co.uk", "${var.x}@example.com", "a%{x}@example.com",
          "a@${x}.com", "x@y", "@example.com", "a b@example.com", "a\n@example.com", "ü@example.com",
          "a\"b@example.com", "a@example.com\n", "a" * 300 + "@example.com"]
ARNS = ["arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
        "arn:aws-us-gov:acm:us-gov-west-1:123456789012:certificate/abc", "arn:aws:acm:us-east-1:123:certificate/x",
        "arn:aws:acm:us-east-1:123456789012:certificate/${x}", "arn:aws:iam::123456789012:role/x"]
EMULATORS = [{"endpoint": "http://127.0.0.1:5000"}, {"endpoint": "http://localhost:99999", "max_retries": 10},
             {"endpoint": "http://evil.example:80"}, {"endpoint": "http://127.0.0.1:5000/${x}"},
             {"endpoint": "http://127.0.0.1:5000", "max_retries": -1}, {"endpoint": "http://127.0.0.1:1", "x": 1},
             {}]

FIELDS: dict[str, st.SearchStrategy] = {
    "name": pool(["mlflow", "a1", "x-y", "abcdefghijklmnopqrst"]),
    "environment": pool(["prod", "staging", "e2", "abcdefghijklmnopqrstu"]),
    "region": pool(["us-east-1", "eu-west-3", "us-gov-west-1", "xx-abc-9"]),
    "tags": tags,
    "az_count": int_pool([2, 3, 6], [-1, 0, 1, 7, 2**31]),
    "availability_zones": st.one_of(
        st.lists(st.sampled_from(["us-east-1a", "us-east-1b", "us-east-1c", "eu-west-1a", "us-east-1${x}"]),
                 max_size=7),
        junk),
    "vpc_cidr": pool(["10.0.0.0/16", "10.20.0.0/20", "192.168.0.0/23", "172.16.0.0/24"],
                     st.sampled_from(CIDRS + ["172.16.0.0/12", "8.8.8.0/24", "100.64.0.0/16"])),
    "subnet_newbits": int_pool([5, 8], [-1, 0, 4, 9, 64]),
    "nat_gateway_mode": pool(["per_az", "single"], st.sampled_from(["PER_AZ", "single "])),
    "instance_type": pool(["t3.medium", "m7g.xlarge", "x-y.z"]),
    "asg_min_size": int_pool([1, 2, 50], [-1, 0, 51, 2**63]),
    "asg_desired_capacity": int_pool([1, 2, 50], [-1, 0, 51]),
    "asg_max_size": int_pool([2, 4, 50], [-1, 0, 51]),
    "mlflow_version": pool(["3.17.2", "0.0.0", "999999999999.0.1"], st.sampled_from(["3.17", "3.17.2rc1", "v3.1.0"])),
    "mlflow_workers": int_pool([0, 32], [-1, 33]),
    "db_engine": pool(["mysql", "postgres"], st.sampled_from(["MySQL", "aurora", "mariadb"])),
    "db_engine_version": pool([None, "8.4", "17"], st.sampled_from(["8", "16.1", "8.0"])),
    "db_instance_class": pool(["db.t3.small", "db.r7g.16xlarge"]),
    "db_allocated_storage_gb": int_pool([20, 100, 65536], [19, 0, -20, 65537]),
    "db_max_allocated_storage_gb": int_pool([20, 100, 65536], [19, -1, 65537]),
    "db_multi_az": pool([True, False], st.sampled_from(["true", 1, 0])),
    "db_backup_retention_days": int_pool([1, 35], [0, 36, -7]),
    "db_password_version": int_pool([1, 1_000_000], [0, 1_000_001]),
    "deletion_protection": pool([True, False], st.sampled_from(["false", 0])),
    "redis_node_type": pool(["cache.t3.micro", "cache.r7g.large"]),
    "redis_num_nodes": int_pool([1, 6], [0, 7]),
    "certificate_arn": pool(ARNS[:2] + [None], st.sampled_from(ARNS)),
    "alb_allowed_cidrs": cidr_list,
    "ssh_allowed_cidrs": cidr_list,
    "ssh_public_key": pool(SSH_KEYS[:2] + [None], st.sampled_from(SSH_KEYS)),
    "alert_emails": st.one_of(st.lists(st.sampled_from(EMAILS[:2]), max_size=2),
                              st.lists(st.sampled_from(EMAILS), max_size=3), junk),
    "log_retention_days": int_pool([1, 365, 3653], [0, 2, 3654, -30]),
    "emulator": pool([None], st.sampled_from(EMULATORS)),
}
UNKNOWN_KEYS = ["bogus", "Name", "vpcCidr", "tags ", "a\nb", "${var.x}", "%{x}", "名前", "\u2028", "k" * 500]


@st.composite
def hostile_overrides(draw) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=4, unique=True))
    example = {n: draw(FIELDS[n]) for n in names}
    if draw(st.integers(0, 9)) == 0:
        example[draw(st.one_of(st.sampled_from(UNKNOWN_KEYS), st.text(min_size=1, max_size=8)))] = draw(junk)
    return example


# --- checks ------------------------------------------------------------------

def user_strings(value: Any) -> list[str]:
    """Every string the user supplied, keys of mappings included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in user_strings(k) + user_strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in user_strings(v)]
    return []


def json_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k] + json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in json_strings(v)]
    return []


def names_key(msg: str, key: str) -> bool:
    """Whether the message names the setting ``key`` exactly (not as part of a longer word).

    Messages read "Invalid settings in <source>: <loc>: ... <loc>: ...", where
    a loc is the key as written (repr() if empty or not printable, whitespace
    collapsed), a nested loc ("tags.'x'"), or a cross-field loc ("a/b/c"). A
    setting that another field's message refers to ("at least
    db_allocated_storage_gb") counts too, as a whole word.
    """
    written = key if key and key.isprintable() else repr(key)
    name, located = " ".join(written.split()), " ".join(f"{written}: ".split()) + " "
    head = f"Invalid settings in {SOURCE}: "
    if not msg.startswith(head):
        return False
    body = msg[len(head):]
    for start in [0] + [m.end() for m in re.finditer(r"\. ", body)]:
        loc = body[start:].split(": ", 1)[0]
        if body.startswith(located, start) or loc.startswith(name + ".") or name in loc.split("/"):
            return True
    explanations = re.sub(r"unknown setting; allowed: one of [^.]*\.", "", body)  # not the list of all settings
    return key in Settings.model_fields and re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", explanations) is not None


def check_refusal(example: dict, err: SettingsError) -> None:
    msg = str(err)
    assert msg.strip(), f"empty message for {example!r}"
    assert len(msg.splitlines()) == 1, f"message is not one line for {example!r}:\n{msg!r}"
    assert any(names_key(msg, k) for k in example), f"message names none of {sorted(example)}: {msg!r}"


def check_stack(example: dict, s: Settings) -> None:
    try:
        text = synth_text(s)
    except Exception as e:  # a product bug: validation let through what the synth cannot take
        raise AssertionError(f"accepted settings {example!r} break the synth: {type(e).__name__}: {e}") from e
    stack = json.loads(text)
    for _module, address, _how_many in ROWS:
        rtype, name = address.split(".", 1)
        of_type = stack.get("resource", {}).get(rtype, {})
        assert of_type and (name == "*" or name in of_type), f"{address} missing with {example!r}"
    strings = json_strings(stack)
    for u in set(user_strings(example)):
        if "${" not in u and "%{" not in u:
            continue
        safe = literal(u)
        for v in strings:
            assert u not in v.replace(safe, ""), \
                f"user string {u!r} from {example!r} is interpolated, unescaped, in {v[:300]!r}"


def test_hostile_settings_are_refused_clearly_or_synthesize_safely():
    # The search runs inside this one test and counts in locals, so the count
    # check does not depend on test order and runs under pytest-xdist too.
    counts = {"examples": 0, "refused": 0, "accepted": 0}
    stacks: set[str] = set()

    @settings(max_examples=MIN_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(hostile_overrides())
    def check(example):
        counts["examples"] += 1
        try:
            s = load_settings(None, **example)
        except SettingsError as e:
            counts["refused"] += 1
            check_refusal(example, e)
            return
        except Exception as e:  # anything else escaping validation is a bug
            raise AssertionError(f"{example!r} raised {type(e).__name__} instead of SettingsError: {e}") from e
        counts["accepted"] += 1
        stacks.add(s.model_dump_json())
        check_stack(example, s)

    check()
    print(f"\nhostile settings: {counts['examples']} examples, {counts['refused']} refused, "
          f"{counts['accepted']} accepted, {len(stacks)} distinct stacks synthesized")
    assert counts["examples"] >= MIN_EXAMPLES, f"only {counts['examples']} hostile examples ran"


def test_the_refusal_check_wants_the_key_named_exactly():
    other = "Invalid settings in the built-in defaults: name: 3 is not allowed; Input should be a valid string."
    assert not names_key(other, "e")  # "e" occurs in "settings", "defaults", ...
    assert not names_key(other, "")
    assert not names_key(other, "nam")
    assert names_key(other, "name")
    assert names_key("Invalid settings in the built-in defaults: e: unknown setting; allowed: see README.", "e")
    assert names_key("Invalid settings in the built-in defaults: '': unknown setting; allowed: one of name.", "")
    assert names_key("Invalid settings in the built-in defaults: tags : unknown setting; allowed: x.", "tags ")
    assert names_key("Invalid settings in the built-in defaults: tags.'a\\nb': 1 is not allowed; x.", "tags")
    assert names_key("Invalid settings in the built-in defaults: asg_min_size/asg_desired_capacity/asg_max_size: "
                     "'5/2/2' is not allowed; allowed: min <= desired <= max.", "asg_desired_capacity")
    with pytest.raises(AssertionError, match="names none of"):
        check_refusal({"e": 1}, SettingsError(other))


# --- a few named cases the issue lists, kept as plain examples ----------------

@pytest.mark.parametrize("example", [
    {"ssh_allowed_cidrs": ["0.0.0.0/0"]},
    {"tags": {"Team": "ü ñ 名"}},
    {"alert_emails": ["${var.x}@example.com"]},
    {"name": "${var.x}"},
    {"tags": {"${x}": "y"}},
    {"bogus": 1},
    {"vpc_cidr": "10.0.0.0/8"},
    {"alb_allowed_cidrs": ["10.0.0.0/8", "10.0.0.0/16"]},
    {"alb_allowed_cidrs": []},
    {"alert_emails": ["ops@example.com", "ops@example.com", "a" * 300 + "@example.com"]},
    {"tags": {f"k{i}": "v" for i in range(60)}},
    {"emulator": {"endpoint": "http://localhost:99999"}},
    {"a\nb": 1},
    {"tags": {"a\nb": 1}},
    {"bogus\u2028": 1},
], ids=lambda e: re.sub(r"\W+", "_", json.dumps(e, ensure_ascii=True))[:40])
def test_named_hostile_cases(example):
    try:
        s = load_settings(None, **example)
    except SettingsError as e:
        check_refusal(example, e)
        return
    check_stack(example, s)
