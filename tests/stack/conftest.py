"""Fixtures for the stack tests: a real OTLP receiver and a real rotel collector."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.free_ports import free_port as free_port  # re-exported for the stack tests

from .otlp_receiver import OtlpTraceReceiver

REPO_ROOT = Path(__file__).resolve().parents[2]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(process: subprocess.Popen, timeout: float = 5) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpTraceReceiver]:
    with OtlpTraceReceiver() as receiver:
        yield receiver


@dataclass(frozen=True)
class Rotel:
    grpc_port: int
    http_port: int
    log_file: Path

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def rotel_binary() -> Path:
    import rotel  # in the test extra; the wheel ships the collector binary

    binary = Path(rotel.__file__).parent / "rotel-agent"
    assert binary.is_file(), f"rotel wheel without its collector binary: {binary}"
    return binary


@pytest.fixture
def rotel_collector(otlp_receiver: OtlpTraceReceiver, tmp_path: Path) -> Iterator[Rotel]:
    """rotel receiving OTLP on free loopback ports, exporting OTLP/gRPC to otlp_receiver."""
    rotel = Rotel(grpc_port=free_port(), http_port=free_port(), log_file=tmp_path / "rotel.log")
    command = [
        str(rotel_binary()),
        "start",
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{rotel.grpc_port}",
        "--otlp-http-endpoint",
        f"127.0.0.1:{rotel.http_port}",
        "--exporter",
        "otlp",
        "--otlp-exporter-endpoint",
        f"http://{otlp_receiver.endpoint}",
        "--otlp-exporter-protocol",
        "grpc",
        "--batch-timeout",
        "100ms",
        "--pid-file",
        str(tmp_path / "rotel.pid"),
        "--log-file",
        str(rotel.log_file),
    ]
    with rotel.log_file.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(rotel.grpc_port, timeout=15, process=process)
        yield rotel
    finally:
        stop_process(process)
