"""Run moto's server with this tier's extensions: ``python -m tests.emulator.server PORT``.

Binds 127.0.0.1 only. The extensions are applied in this process before the
server starts (they patch moto's backends and response classes in place).
"""
from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    port = int(argv[0])
    from tests.emulator import moto_extensions

    applied = moto_extensions.apply()
    print(f"moto extensions applied: {', '.join(applied) or 'none'}", flush=True)
    from moto import server

    server.main(["-H", "127.0.0.1", "-p", str(port)])


if __name__ == "__main__":
    main(sys.argv[1:])
