#!/usr/bin/env python
"""From a Terraform address to the code that makes it: `python tools/where.py ADDRESS [...]`.

Prints, for each address of the default stack (or the stack of MLFLOW_SETTINGS),
the module file of the construct that creates it and the construct path:

    aws_security_group.alb  modules/security.py  (mlflow-dev/security/aws_security_group.alb)

Many addresses are built in small loops (``f"aws_security_group.{key}"``), so a
grep for the whole address does not always find them; this always does.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def where(stack) -> dict[str, tuple[str, str]]:
    """Every resource, data source and output address -> (module file, construct path)."""
    from modules.base import address_of

    found = {}
    for element in stack.elements():
        try:
            address = address_of(element)
        except Exception:  # providers, backends: no address
            continue
        owner = element.node.scope
        source = inspect.getsourcefile(type(owner))
        found[address] = (str(Path(source).resolve().relative_to(ROOT)), element.node.path)
    return found


def main(argv: list[str]) -> int:
    import os

    import modules  # noqa: F401  (Node 22 and the lazy provider import, before cdktf)
    from cdktf import Testing
    from main import MlflowStack
    from modules.settings import load_settings

    chosen = os.environ.get("MLFLOW_SETTINGS")
    stack = MlflowStack(Testing.app(), load_settings(Path(chosen) if chosen else None))
    table = where(stack)
    wanted = argv or sorted(table)
    missing = [a for a in wanted if a.split("[")[0] not in table]
    for address in wanted:
        hit = table.get(address.split("[")[0])
        if hit:
            print(f"{address}  {hit[0]}  ({hit[1]})")
    if missing:
        print(f"not an address of this stack: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
