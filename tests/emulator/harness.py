"""The emulator tier's harness: the real terraform CLI in a working directory, and
the product's settings pointed at a moto server. Imported by the tier's tests."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.support import settings_for, terraform_env

# A fixed test key (no private half is kept anywhere; nobody logs in).
TEST_PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhnZxIiaqPpvq+pbngZtokbxr4daicX1hAvaztby5Cf emulator-test"
)

# Runs terraform and reports the peak RSS of terraform and its provider plugin
# (the largest of the processes it waited for) on the last line of stderr.
_RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:])\n"
    "sys.stderr.write('\\nMAXRSS_KB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


class Terraform:
    """The real terraform CLI in one working directory, timed per phase."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.env = terraform_env(workdir)
        self.exe = shutil.which("terraform") or "/usr/local/bin/terraform"
        self.phases: dict[str, float] = {}
        self.peak_rss_kb = 0

    def __call__(self, phase: str, *args: str, ok: tuple[int, ...] = (0,), timeout: int = 900) -> subprocess.CompletedProcess:
        start = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _RSS_WRAPPER, self.exe, *args, "-no-color"],
                cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            raise AssertionError(f"terraform {phase} ({' '.join(args)}) still running after {timeout} s:\n"
                                 f"{tail(out, 6000)}") from None
        self.phases[phase] = time.monotonic() - start
        body, _, rss = proc.stderr.rpartition("MAXRSS_KB=")
        if rss.strip().isdigit():
            self.peak_rss_kb = max(self.peak_rss_kb, int(rss))
            proc.stderr = body
        if proc.returncode not in ok:
            raise AssertionError(
                f"terraform {phase} ({' '.join(args)}) exited {proc.returncode}:\n"
                f"{tail(proc.stdout)}\n{tail(proc.stderr)}"
            )
        return proc


def tail(text: str, limit: int = 20000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def self_signed_certificate(domain: str = "mlflow.emulator.test") -> tuple[bytes, bytes]:
    """A throwaway self-signed certificate and key (PEM) for the HTTPS listener."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption()),
    )


def emulator_settings(config: dict, moto_server):
    overrides = dict(config)
    if overrides.get("certificate_arn"):
        # SECOND_CONFIG's ARN is a placeholder: import a real (self-signed) certificate.
        cert, key = self_signed_certificate()
        overrides["certificate_arn"] = moto_server.client("acm").import_certificate(
            Certificate=cert, PrivateKey=key)["CertificateArn"]
    if overrides.get("route53_zone_id"):
        # DOMAIN_CONFIG's zone id is a placeholder: make the hosted zone on the emulator.
        zone = moto_server.client("route53").create_hosted_zone(
            Name=overrides["domain_name"].split(".", 1)[1], CallerReference="emulator-test")
        overrides["route53_zone_id"] = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    overrides.setdefault("deletion_protection", False)  # so that destroy can run; the change-safety tier keeps it on
    return settings_for(
        **overrides,
        emulator={"endpoint": moto_server.endpoint},
        ssh_public_key=TEST_PUBLIC_KEY,
    )
