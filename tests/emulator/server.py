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


class _Calls:
    """Every AWS call, in front of moto:

    * one log line per call: time, action, HTTP status and, for an error, its code (group and
      rule ids for security-group calls; ``attempt N`` for an SDK retry). A test that hangs on a
      retried refusal (a DependencyViolation, say) shows which call in its emulator log;
    * an SDK retry (``amz-sdk-request: attempt=N``, N > 1) of a call moto already answered
      with success gets that answer again instead of running the call twice (``replayed``).
      On this loaded machine a response is now and then lost between moto and the provider,
      which then retries a create moto already made: a second internet gateway, or
      FlowLogAlreadyExists for the flow log it had just created. On AWS the first answer
      arrives (and EC2 creates are idempotent by client token): replaying it is AWS's behaviour.
    """

    KEEP = 5000  # answered invocations remembered

    def __init__(self, app):
        import collections
        import threading

        self.app = app
        self.lock = threading.Lock()
        self.answered: collections.OrderedDict = collections.OrderedDict()  # invocation id -> answer
        self.in_flight: dict = {}  # invocation id -> threading.Event

    def __call__(self, environ, start_response):
        import io
        import re
        import threading
        import time

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        target = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
        action = target or (re.search(rb"(?:^|&)Action=([A-Za-z0-9]+)", body) or
                            re.search(r"(?:^|&)Action=([A-Za-z0-9]+)", environ.get("QUERY_STRING", "")) or [None, None])[1]
        if isinstance(action, bytes):
            action = action.decode()
        action = action or f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO', '')[:60]}"
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        attempt = re.search(r"attempt=(\d+)", environ.get("HTTP_AMZ_SDK_REQUEST", ""))
        attempt = int(attempt.group(1)) if attempt else 1

        answer = None
        if invocation:
            with self.lock:
                waiting = self.in_flight.get(invocation)
            if waiting is not None:
                waiting.wait(300)  # the first attempt is still being answered
            with self.lock:
                answer = self.answered.get(invocation) if attempt > 1 else None
                if answer is None:
                    self.in_flight[invocation] = threading.Event()
        if answer is not None:
            status_line, headers, chunks = answer
            print(f"{time.strftime('%H:%M:%S')} {action} {status_line.split()[0]} replayed "
                  f"(attempt {attempt}: the first answer was lost on its way)", flush=True)
            start_response(status_line, headers)
            return chunks

        status: list = []

        def recording_start_response(code, headers, *rest):
            status[:] = [code, list(headers)]
            return start_response(code, headers, *rest)

        try:
            chunks = list(self.app(environ, recording_start_response))
        finally:
            if invocation:
                with self.lock:
                    if status and status[0][:1] == "2":
                        self.answered[invocation] = (status[0], status[1], chunks)
                        while len(self.answered) > self.KEEP:
                            self.answered.popitem(last=False)
                    self.in_flight.pop(invocation).set()
        code = status[0].split()[0] if status else "?"
        line = f"{time.strftime('%H:%M:%S')} {action} {code}"
        if attempt > 1:
            line += f" attempt {attempt}"
        if "SecurityGroup" in action:  # which group and rule: moto's rule bookkeeping is the usual suspect
            from urllib.parse import parse_qsl
            params = dict(parse_qsl(body.decode(errors="replace")))
            line += " " + ",".join(f"{k}={v}" for k, v in params.items() if k == "GroupId" or "RuleId" in k
                                   or k.endswith(("CidrIp", "FromPort", "GroupId")))
        if code >= "400":
            found = re.search(rb"<Code>([^<]+)</Code>|\"__type\":\s*\"(?:[^\"#]*#)?([^\"]+)\"", b"".join(chunks)[:4000])
            if found:
                line += " " + (found.group(1) or found.group(2)).decode()
        print(line, flush=True)
        return chunks


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

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # _Calls logs each call
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, _Calls(app), threaded=True, request_handler=MotoRequestHandler)
    port = server.server_address[1]
    os.environ["MOTO_PORT"] = str(port)  # moto builds some URLs from it
    partial = port_file.with_name(port_file.name + ".partial")
    partial.write_text(f"{port}\n")
    partial.replace(port_file)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
