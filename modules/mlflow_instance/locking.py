"""Hash locks of what the instances install, one file per MLflow version.

``make lock`` runs ``python -m modules.mlflow_instance [VERSION ...]``.
For each MLflow version it asks uv for a PEP 751 lock per target platform
(CPython 3.11.16 on Linux x86_64 and aarch64 with glibc 2.34, AL2023's), checks
that both platforms resolve to the same pins, and writes one requirements file
with the sha256 of every wheel either platform may install:
``locks/mlflow-<version>.txt``. ``locks/uv.txt`` pins the installer itself.

The instances install with ``--require-hashes --no-deps`` and wheels only, so
every byte they run from these packages is named here.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

LOCKS = Path(__file__).resolve().parent / "locks"

# AL2023's python3.11 package: 3.11.16-1.amzn2023.0.1 (release 2023.12.20260831,
# "Core Updated Packages" of its release notes). AL2023 ships glibc 2.34.
PYTHON_VERSION = "3.11.16"
PLATFORMS = ("x86_64-manylinux_2_34", "aarch64-manylinux_2_34")
# The installer on the instances; the same release as the Pipfile's uv, which writes the locks.
UV_VERSION = "0.13.9"
EXTRAS = ("pymysql", "psycopg2-binary", "boto3", "redis")
UV_LOCK = LOCKS / "uv.txt"

_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+) \\$", re.M)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def requirements(mlflow_version: str) -> list[str]:
    """The top-level requirements of MLflow's venv on the instances."""
    return [f"mlflow[auth]=={mlflow_version}", *EXTRAS]


def lock_path(mlflow_version: str) -> Path:
    return LOCKS / f"mlflow-{mlflow_version}.txt"


def locked_versions() -> list[str]:
    """MLflow versions that have a lock, oldest first."""
    found = [p.name[len("mlflow-"):-len(".txt")] for p in LOCKS.glob("mlflow-*.txt")]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def lock_for(mlflow_version: str) -> Path:
    """The lock file of ``mlflow_version``; SettingsError (one paragraph) when there is none."""
    path = lock_path(mlflow_version)
    if _VERSION.match(mlflow_version) and path.is_file():
        return path
    from modules.settings import SettingsError

    have = ", ".join(locked_versions()) or "none"
    raise SettingsError(
        f"mlflow_version: {mlflow_version!r} has no lock file "
        f"(modules/mlflow_instance/locks/mlflow-{mlflow_version}.txt). The instances install only "
        f"hash-locked packages; locks exist for: {have}. Run `make lock MLFLOW_VERSIONS={mlflow_version}` "
        "and commit the new file, or set mlflow_version to a locked release."
    )


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    wheels: tuple[tuple[str, str], ...]  # (file name, sha256), sorted by file name


def parse_lock(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, sha256 set) of a lock file (for tests and checks)."""
    pins: dict[str, tuple[str, frozenset[str]]] = {}
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", text)
    for block in blocks:
        match = _PIN.search(block)
        if match:
            pins[match.group(1).lower()] = (match.group(2), frozenset(_HASH.findall(block)))
    return pins


def _uv() -> str:
    uv = shutil.which("uv", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if uv is None:
        raise SystemExit("make lock: uv is not installed (it is a dev package: run `make setup`)")
    out = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout.split()
    if out[1] != UV_VERSION:
        raise SystemExit(f"make lock: uv {out[1]} found, {UV_VERSION} expected (the Pipfile's pin)")
    return uv


def _resolve(uv: str, reqs: list[str], platform: str, work: Path) -> dict[str, Pin]:
    source = work / "requirements.in"
    source.write_text("\n".join(reqs) + "\n")
    out = work / f"pylock.{platform}.toml"
    subprocess.run(
        [uv, "pip", "compile", str(source), "--format", "pylock.toml", "--python-version", PYTHON_VERSION,
         "--python-platform", platform, "--only-binary", ":all:", "--no-header", "--quiet", "-o", str(out)],
        check=True,
    )
    pins = {}
    for package in tomllib.loads(out.read_text())["packages"]:
        wheels = tuple(sorted(
            (w["url"].rsplit("/", 1)[1], w["hashes"]["sha256"]) for w in package.get("wheels", [])))
        if not wheels:
            raise SystemExit(f"make lock: {package['name']} {package['version']} has no wheel for {platform}")
        pins[package["name"]] = Pin(package["name"], package["version"], wheels)
    return pins


def compile_lock(reqs: list[str], title: str) -> str:
    """Requirements text pinning ``reqs`` for every platform in PLATFORMS, with wheel hashes."""
    uv = _uv()
    with tempfile.TemporaryDirectory() as tmp:
        by_platform = {p: _resolve(uv, reqs, p, Path(tmp)) for p in PLATFORMS}
    first, *others = by_platform.values()
    for platform, pins in zip(PLATFORMS[1:], others, strict=True):
        a = {(p.name, p.version) for p in first.values()}
        b = {(p.name, p.version) for p in pins.values()}
        if a != b:
            raise SystemExit(f"make lock: {PLATFORMS[0]} and {platform} resolve differently: "
                             f"{sorted(a ^ b)}")
    lines = [
        f"# {title}",
        f"# CPython {PYTHON_VERSION} (AL2023's python3.11) on Linux {' and '.join(PLATFORMS)}.",
        f"# Written by `make lock` with uv {UV_VERSION}; do not edit. Top-level: {' '.join(reqs)}",
        "# Install with --require-hashes --no-deps, wheels only.",
    ]
    for name in sorted(first):
        wheels = sorted({w for pins in by_platform.values() for w in pins[name].wheels})
        lines += [f"# {file}" for file, _ in wheels]
        lines.append(f"{name}=={first[name].version} \\")
        lines += [f"    --hash=sha256:{sha}" + (" \\" if i < len(wheels) - 1 else "")
                  for i, (_, sha) in enumerate(wheels)]
    return "\n".join(lines) + "\n"


def write_locks(versions: list[str]) -> list[Path]:
    LOCKS.mkdir(exist_ok=True)
    written = []
    for version in versions:
        if not _VERSION.match(version):
            raise SystemExit(f"make lock: {version!r} is not an MLflow release such as 3.17.2")
        path = lock_path(version)
        path.write_text(compile_lock(requirements(version), f"MLflow {version} for the instances' venv."))
        written.append(path)
    UV_LOCK.write_text(compile_lock([f"uv=={UV_VERSION}"], "The installer of the instances (uv)."))
    written.append(UV_LOCK)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the instances' hash locks (make lock).")
    parser.add_argument("versions", nargs="*", help="MLflow versions (default: every locked version)")
    args = parser.parse_args(argv)
    versions = args.versions or locked_versions()
    if not versions:
        raise SystemExit("make lock: name the MLflow versions to lock, e.g. MLFLOW_VERSIONS=3.17.2")
    for path in write_locks(versions):
        pins = parse_lock(path.read_text())
        hashes = sum(len(h) for _, h in pins.values())
        print(f"wrote {path.relative_to(LOCKS.parents[2])}: {len(pins)} pins, {hashes} wheel hashes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
