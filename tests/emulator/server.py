"""Run moto's server with this tier's extensions: ``python -m tests.emulator.server PORT_FILE``.

Binds 127.0.0.1 on a port the OS picks (port 0) and only then writes that
port to PORT_FILE (atomically, by rename), so no other process can take the
port between choosing and binding it. The extensions are applied in this
process before the server starts (they patch moto's backends and response
classes in place).

Environment (both optional, comma-separated names):
  EMULATOR_WITHOUT  extensions of moto_extensions.py to leave out, to show a
                    test fails without one
  EMULATOR_FAULT    opt-in faults of moto_extensions.FAULTS to install
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def _names(variable: str) -> list[str]:
    return [n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()]


def main(argv: list[str]) -> None:
    port_file = Path(argv[0])
    from tests.emulator import moto_extensions

    applied = moto_extensions.apply(without=frozenset(_names("EMULATOR_WITHOUT")))
    print(f"moto extensions applied: {', '.join(applied) or 'none'}", flush=True)
    faults = [moto_extensions.install_fault(name) for name in _names("EMULATOR_FAULT")]
    if faults:
        print(f"moto faults installed: {', '.join(faults)}", flush=True)

    # What moto.server.main does, with port 0 and the bound port reported.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs from it
    partial = port_file.with_name(port_file.name + ".partial")
    partial.write_text(f"{port}\n")
    partial.replace(port_file)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
