#!/usr/bin/env python
"""Benchmark: full default-stack synth with the lazy vs the eager provider import,
and the unit suite's wall time. Prints figures; asserts nothing (run by hand or in CI).

    make bench        # or: pipenv run python bench/synth_bench.py [--runs N] [--no-suite]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT_SUITE = "not terraform and not emulator and not runtime and not policy"


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (KiB)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                stack += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def measure(cmd: list[str], env: dict, cwd: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (MiB, whole process tree, sampled every 20 ms)."""
    peak = 0
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    t.join()
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\n{err.decode()}")
    return wall, peak // 1024


def synth(eager: bool, runs: int) -> tuple[float, int]:
    walls, peaks = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, MLFLOW_SETTINGS_DIR=str(Path(tmp) / "none"))
            env.pop("MLFLOW_SETTINGS", None)
            env.pop("MLFLOW_EAGER_PROVIDER_IMPORT", None)
            if eager:
                env["MLFLOW_EAGER_PROVIDER_IMPORT"] = "1"
            wall, peak = measure([sys.executable, str(ROOT / "main.py")], env, tmp)
            walls.append(wall)
            peaks.append(peak)
    return statistics.median(walls), max(peaks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="synth runs per variant (median wall, max RSS)")
    ap.add_argument("--no-suite", action="store_true", help="skip timing the unit suite")
    args = ap.parse_args()

    node = os.environ.get("JSII_NODE") or str(ROOT / "node_modules" / ".bin" / "node")
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, jsii on node {node_version}")
    lazy_wall, lazy_rss = synth(False, args.runs)
    eager_wall, eager_rss = synth(True, args.runs)
    print(f"default-stack synth, lazy provider import : {lazy_wall:6.2f} s wall (median of {args.runs}), peak RSS {lazy_rss} MiB")
    print(f"default-stack synth, eager provider import: {eager_wall:6.2f} s wall (median of {args.runs}), peak RSS {eager_rss} MiB")
    print(f"lazy / eager wall ratio                   : {lazy_wall / eager_wall:6.2f}x")
    if not args.no_suite:
        start = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", UNIT_SUITE], cwd=ROOT,
                            stdout=subprocess.DEVNULL).returncode
        print(f"unit suite (-m '{UNIT_SUITE}'): {time.perf_counter() - start:6.1f} s wall, exit {rc}")


if __name__ == "__main__":
    main()
