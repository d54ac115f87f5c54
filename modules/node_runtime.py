"""Run jsii on the project's own Node.js 22 (npm package ``node@22``).

The machine's Node 20 is end-of-life for jsii, which then prints a warning
banner on every run. ``npm ci`` installs Node 22 into node_modules/.bin; we
point jsii at it through JSII_NODE unless the user already chose a node.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_NODE = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "node"


# A 1 MiB young generation lowers jsii's peak memory by about 40 MiB at no
# measurable cost in time (bench/synth_bench.py); users' NODE_OPTIONS win.
NODE_OPTIONS = "--max-semi-space-size=1"


def select() -> str:
    """Set JSII_NODE to the project's node when present; return the node used."""
    if "JSII_NODE" not in os.environ and PROJECT_NODE.exists():
        os.environ["JSII_NODE"] = str(PROJECT_NODE)
    os.environ.setdefault("NODE_OPTIONS", NODE_OPTIONS)
    return os.environ.get("JSII_NODE", "node")
