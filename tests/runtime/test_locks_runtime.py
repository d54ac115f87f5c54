"""Every pin of every lock has a hash-matching wheel for both architectures.

For each lock and each target platform (CPython 3.11.16, Linux x86_64 and
aarch64, glibc 2.34), uv installs the lock into a throwaway --target as it
would for that platform: it picks each package's wheel for the platform and
checks its sha256 against the lock. Needs the package index (uv's cache keeps
reruns fast); marked ``runtime`` with the other tests that install from it.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from modules.mlflow_instance import locking

pytestmark = pytest.mark.runtime

UV = str(Path(sys.executable).parent / "uv")
LOCKS = [*(locking.lock_path(v) for v in locking.locked_versions()), locking.UV_LOCK]


def install_for(platform: str, lock: Path, target: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [UV, "pip", "install", "--quiet", "--python-platform", platform,
         "--python-version", locking.PYTHON_VERSION, "--require-hashes", "--no-deps",
         "--only-binary", ":all:", "--target", str(target), "-r", str(lock)],
        capture_output=True, text=True, timeout=900,
    )


@pytest.mark.parametrize("platform", locking.PLATFORMS)
@pytest.mark.parametrize("lock", LOCKS, ids=[p.name for p in LOCKS])
def test_every_pin_installs_for_the_platform_with_its_locked_hash(lock, platform, tmp_path):
    result = install_for(platform, lock, tmp_path / "target")
    assert result.returncode == 0, result.stderr
    arch = platform.split("-")[0]
    if lock != locking.UV_LOCK:  # compiled code for the platform's CPU, not this machine's
        (so,) = (tmp_path / "target" / "numpy" / "_core").glob("_multiarray_umath.*.so")
        assert f"-{arch}-linux-gnu.so" in so.name


def test_a_lock_missing_an_architectures_wheel_fails(tmp_path):
    # numpy without its aarch64 wheel's hash: x86_64 still installs, aarch64 must not.
    text = locking.lock_path("3.17.2").read_text()
    block = re.search(r"((?:# numpy-.*\.whl\n)+)numpy==\S+ \\\n((?:    --hash=sha256:\w+.*\n)+)", text)
    files = block.group(1).split()[1::2]
    hashes = re.findall(r"sha256:(\w+)", block.group(2))
    aarch64 = hashes[[i for i, f in enumerate(files) if "aarch64" in f][0]]
    assert aarch64 == hashes[0]  # wheels sort by file name: aarch64 before x86_64
    broken = tmp_path / "broken.txt"
    broken.write_text(text.replace(f"\n    --hash=sha256:{aarch64} \\", ""))  # the first of two
    pins = locking.parse_lock(broken.read_text())
    assert pins["numpy"][1] == {hashes[1]} and len(pins) == len(locking.parse_lock(text))
    assert install_for("x86_64-manylinux_2_34", broken, tmp_path / "x86").returncode == 0
    result = install_for("aarch64-manylinux_2_34", broken, tmp_path / "arm")
    assert result.returncode != 0 and "numpy" in result.stderr
