"""The real user data's fetch-and-verify step against moto's S3.

The user data (render_user_data) runs under bash with the AWS CLI pointed at
moto. A tampered bundle under the pinned key is refused before anything from it
runs; the right bundle is unpacked and its bootstrap.sh starts. A `dnf` on PATH
stands in for the package manager: it records that the bundle's script ran and
stops it, so nothing on this machine is installed.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import modules.mlflow_instance as mi
from modules.mlflow_instance import build_bundle, render_user_data

pytestmark = pytest.mark.runtime

INPUTS = dict(
    region="us-east-1", ssm_prefix="/mlflow/runtime-ud", log_group_mlflow="/mlflow/ud/mlflow",
    log_group_nginx="/mlflow/ud/nginx", log_group_system="/mlflow/ud/system", mlflow_version="3.17.2",
    db_engine="postgres", metrics_namespace="MLflow/ud",
)
DNF_STOPS = 97  # exit status of the stand-in dnf


@pytest.fixture
def instance(tmp_path, moto_server, aws_cli):
    """A bucket in moto, a private TMPDIR, and a PATH whose dnf records that it ran, then fails."""
    bucket = f"ud-{os.getpid()}-{tmp_path.name.lower().replace('_', '-')}"[:63].rstrip("-")
    moto_server.client("s3").create_bucket(Bucket=bucket)
    bin_dir, tmp, marker = tmp_path / "bin", tmp_path / "tmp", tmp_path / "bundle-ran"
    bin_dir.mkdir()
    tmp.mkdir()
    dnf = bin_dir / "dnf"
    dnf.write_text(f"#!/bin/bash\necho \"dnf $*\" >> {marker}\nexit {DNF_STOPS}\n")
    dnf.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{Path(aws_cli).parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path), "TMPDIR": str(tmp), "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": moto_server.endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
    }
    return bucket, env, marker, tmp


def boot(user_data: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "user-data.sh"
    script.write_text(user_data)
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)


def test_a_tampered_bundle_is_refused_before_anything_from_it_runs(instance, moto_server, tmp_path):
    bucket, env, marker, tmp = instance
    bundle = build_bundle(mi.BootstrapInputs(**INPUTS))
    # Under the pinned key: a well-formed bundle whose script would leave the marker.
    evil = mi._tar_gz({"bootstrap.sh": ("0755", f"#!/bin/bash\ntouch {marker}\n".encode())})
    moto_server.client("s3").put_object(Bucket=bucket, Key=bundle.key, Body=evil)
    result = boot(render_user_data(bucket, bundle.key, bundle.sha256, "us-east-1"), env, tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"is not the bundle with sha256 {bundle.sha256}; refusing to run it" in result.stderr
    assert not marker.exists()
    (work,) = tmp.iterdir()
    assert [p.name for p in work.iterdir()] == ["bundle.tar.gz"]  # downloaded, never unpacked


def test_a_bundle_with_one_byte_changed_is_refused(instance, moto_server, tmp_path):
    bucket, env, marker, _ = instance
    bundle = build_bundle(mi.BootstrapInputs(**INPUTS))
    flipped = bytearray(bundle.data)
    flipped[len(flipped) // 2] ^= 1
    moto_server.client("s3").put_object(Bucket=bucket, Key=bundle.key, Body=bytes(flipped))
    result = boot(render_user_data(bucket, bundle.key, bundle.sha256, "us-east-1"), env, tmp_path)
    assert result.returncode == 1 and "refusing to run it" in result.stderr
    assert not marker.exists()


def test_the_right_bundle_is_unpacked_and_its_bootstrap_runs(instance, moto_server, tmp_path):
    bucket, env, marker, tmp = instance
    bundle = build_bundle(mi.BootstrapInputs(**INPUTS))
    moto_server.client("s3").put_object(Bucket=bucket, Key=bundle.key, Body=bundle.data)
    result = boot(render_user_data(bucket, bundle.key, bundle.sha256, "us-east-1"), env, tmp_path)
    # bootstrap.sh from the bundle ran up to its first command, the stand-in dnf.
    assert result.returncode == DNF_STOPS, result.stderr
    assert marker.read_text() == "dnf install -y python3.11 python3.11-pip nginx amazon-cloudwatch-agent rsyslog\n"
    (work,) = tmp.iterdir()
    unpacked = work / "bundle"
    assert (unpacked / "bootstrap.sh").read_bytes() == bundle.members["bootstrap.sh"]
    assert (unpacked / "requirements.txt").read_bytes() == bundle.members["requirements.txt"]
