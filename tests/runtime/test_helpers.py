"""The runtime tier's own helpers: ports that no other test process is handed.

Not marked: no services, no root (except the moto check, marked runtime).
"""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

import runtime_helpers as h

HERE = Path(__file__).resolve().parent


def test_ports_come_from_below_the_ephemeral_range_and_are_never_repeated():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [h.free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports)
    assert all(p in h.PORT_RANGE and p < low for p in ports)


def test_a_port_held_here_is_not_handed_to_another_process():
    held = h.free_port()
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import runtime_helpers as h; "
            f"h.PORT_RANGE = range({held}, {held + 1}); h.free_port()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and f"no free port in range({held}, {held + 1})" in result.stderr


def test_a_port_in_use_is_skipped():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        saved = h.PORT_RANGE
        h.PORT_RANGE = range(taken, taken + 1)
        try:
            with pytest.raises(RuntimeError, match="no free port"):
                h.free_port()
        finally:
            h.PORT_RANGE = saved


@pytest.mark.runtime
def test_moto_moves_to_another_port_when_its_port_is_taken(base_dir):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = h.Moto(base_dir / "moto-retry.log", port=taken)
        try:
            server.start()
            assert server.port != taken and h.http_status(f"{server.endpoint}/moto-api/") == 200
            assert h.address_in_use(base_dir / "moto-retry.log")
        finally:
            server.stop()
