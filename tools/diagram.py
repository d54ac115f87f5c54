#!/usr/bin/env python
"""Architecture diagram (Mermaid) generated from the synthesized default stack.

Modules are groups, resources are nodes, Terraform references are edges.
Writes the block between the diagram markers in docs/architecture.md;
tests/test_diagram.py fails when it is stale.

    make diagram     # or: pipenv run python tools/diagram.py
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import modules  # noqa: E402,F401  (Node 22 + lazy provider import before cdktf loads)

PAGE = ROOT / "docs" / "architecture.md"
START, END = "<!-- diagram:start (tools/diagram.py) -->", "<!-- diagram:end -->"
MODULE_ORDER = ("bootstrap", "networking", "security", "database", "mlflow", "alerting", "observability")
_REF = re.compile(r"\$\{[^}]*?\b((?:data\.)?[a-z][a-z0-9_]*\.[a-z_][a-z0-9_-]*)")


def _node(address: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", address)


def mermaid(stack: dict, modules: dict[str, str]) -> str:
    """Mermaid flowchart of a synthesized stack; modules maps address -> module."""
    groups: dict[str, list[str]] = {m: [] for m in MODULE_ORDER}
    bodies: dict[str, object] = {}
    for block, prefix in (("resource", ""), ("data", "data.")):
        for rtype, items in sorted(stack.get(block, {}).items()):
            for name, body in sorted(items.items()):
                address = f"{prefix}{rtype}.{name}"
                module = modules[address]
                groups.setdefault(module, []).append(address)
                bodies[address] = {k: v for k, v in body.items() if k != "//"}
    edges = set()
    for address, body in bodies.items():
        for ref in _REF.findall(json.dumps(body)):
            if ref in bodies and ref != address:
                edges.add((address, ref))
    lines = ["flowchart LR"]
    for module, members in groups.items():
        if not members:
            continue
        lines.append(f"  subgraph {module}")
        lines += [f'    {_node(a)}["{a}"]' for a in members]
        lines.append("  end")
    lines += [f"  {_node(a)} --> {_node(b)}" for a, b in sorted(edges)]
    return "\n".join(lines) + "\n"


def current() -> str:
    """The diagram of the default stack (built in memory, nothing written)."""
    from cdktf import Testing

    from main import MlflowStack
    from modules.base import address_of
    from modules.settings import load_settings

    stack = MlflowStack(Testing.app(), load_settings(None))
    modules = {address_of(e): e.node.path.split("/")[1] for e in stack.elements()}
    return mermaid(json.loads(Testing.synth(stack)), modules)


def page_with(diagram: str, page: str) -> str:
    """The page with this diagram between its markers."""
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n```mermaid\n{diagram}```\n{END}{tail}"


def diagram_in(page: str) -> str:
    """The diagram a page has between its markers now (without the mermaid fence)."""
    block = page.split(START, 1)[1].split(END, 1)[0]
    return block.removeprefix("\n```mermaid\n").removesuffix("```\n")


def main() -> None:
    PAGE.write_text(page_with(current(), PAGE.read_text()))
    print(f"wrote the diagram in {PAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
