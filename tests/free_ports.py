"""Loopback ports for test servers that the kernel will not hand to anyone else meanwhile.

A port from ``bind(("127.0.0.1", 0))`` comes from the ephemeral range, the same range every
outgoing connection's local port is drawn from. Between picking it and the server binding
it, one of the suite's many client connections (database, Redis, OTLP) can take it: CI saw
Jaeger exit with "bind: address already in use". Ports below the ephemeral range are only
ever used by someone who asks for them by number, so they are picked there instead.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_ATTEMPTS = 200
_handed_out: set[int] = set()


def _candidate_range() -> tuple[int, int]:
    """The ports outside the kernel's ephemeral range that tests may use (inclusive)."""
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        low, high = 32_768, 60_999  # Linux's default
    if low - 1 - _LOWEST >= 1_000:
        return _LOWEST, low - 1
    if 65_535 - high >= 1_000:
        return high + 1, 65_535
    return _LOWEST, 65_535


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free 127.0.0.1 TCP port outside the ephemeral range, never the same twice per process."""
    low, high = _candidate_range()
    # Seeded by pid so that concurrent test processes walk different sequences.
    rng = random.Random(os.getpid() ^ random.getrandbits(32))
    for _ in range(_ATTEMPTS):
        port = rng.randint(low, high)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {low}-{high} after {_ATTEMPTS} tries")
