"""The test-server port picker stays out of the kernel's ephemeral range."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.free_ports import _candidate_range, free_port


def _ephemeral_range() -> tuple[int, int]:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return int(low), int(high)


def test_picked_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    low, high = _ephemeral_range()
    picked = [free_port() for _ in range(50)]
    assert len(set(picked)) == len(picked)
    assert all(not low <= port <= high for port in picked), picked
    assert all(_candidate_range()[0] <= port <= _candidate_range()[1] for port in picked)


def test_a_picked_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def test_a_port_in_use_is_not_picked(monkeypatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        monkeypatch.setattr("tests.free_ports._candidate_range", lambda: (busy, busy))
        with pytest.raises(RuntimeError, match="no free loopback port"):
            free_port()
