"""FerretDB and moto's DynamoDB server as local processes on 127.0.0.1, for the tests.

Each starts on a free port, is waited for (bounded) until it answers, and is stopped
at the end (terminate, then kill). FerretDB is the binary ``scripts/stack.sh build``
makes (v1.24.2, SQLite backend in a temporary directory); moto is the ``moto[server]``
package of the ``test`` extra, run as ``python -m moto.server``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK_SCRIPT = REPO / "scripts" / "stack.sh"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ferretdb_binary() -> Path:
    """The cached FerretDB binary; fails with what to run when it is not built."""
    out = subprocess.run(
        ["bash", str(STACK_SCRIPT), "paths"], capture_output=True, text=True, timeout=60
    )
    paths = dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)
    binary = Path(paths.get("FERRETDB_BIN", ""))
    if not paths.get("FERRETDB_BIN") or not binary.is_file():
        raise RuntimeError(
            f"FerretDB is not built ({binary or 'no path'}): run `bash scripts/stack.sh build` "
            "(or `bash scripts/stack.sh build ferretdb`, about 3 minutes from empty caches)"
        )
    return binary


def _wait_for_port(process: subprocess.Popen[bytes], port: int, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} in {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running(
    command: list[str], port: int, what: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(process, port, what, log)
        yield process
    finally:
        _stop(process)


@contextmanager
def ferretdb(directory: Path, port: int | None = None) -> Iterator[str]:
    """A FerretDB on 127.0.0.1 with its SQLite files in ``directory``; yields its URI."""
    port = port or free_port()
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    command = [
        str(ferretdb_binary()),
        f"-listen-addr=127.0.0.1:{port}",
        "-handler=sqlite",
        f"-sqlite-url=file:{data}/",
    ]
    with running(command, port, "FerretDB", directory / "ferretdb.log"):
        yield f"mongodb://127.0.0.1:{port}/"


@contextmanager
def moto_server(directory: Path) -> Iterator[str]:
    """moto's server (all services; the tests use DynamoDB) on 127.0.0.1; yields its URL."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    directory.mkdir(parents=True, exist_ok=True)
    with running(command, port, "moto server", directory / "moto.log"):
        yield f"http://127.0.0.1:{port}"
