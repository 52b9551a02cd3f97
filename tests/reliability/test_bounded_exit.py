"""A dead, blackholed or slow collector never holds the process at exit or on SIGTERM.

Stock SDK 1.45: 15 s (refused) to 20-30 s (blackholed) to exit, queued spans lost with
few log lines. With otel_db the exit takes at most OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS
(default 5 s) and one line says what was not exported and why. The assertions are
generous (a 5 s bound must end within 8 s): this is a behavioural bound, not a speed test.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.conftest import free_port
from tests.stack.otlp_receiver import OtlpTraceReceiver

from .conftest import REPO_ROOT, app_env, instrument_command, run_app

#: Ends some spans, prints the wall time at which the app's own work was over.
APP_THEN_EXIT = """
    import sqlite3, time
    from opentelemetry import trace

    tracer = trace.get_tracer("otel_db.tests.reliability")
    connection = sqlite3.connect(":memory:")
    for _ in range(50):
        with tracer.start_as_current_span("job"):
            connection.execute("SELECT 1").fetchall()
    print(f"done {time.time()}", flush=True)
"""


def exit_seconds(stdout: str, ended: float) -> float:
    done = [line for line in stdout.splitlines() if line.startswith("done ")]
    assert done, stdout
    return ended - float(done[-1].split()[1])


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A port whose kernel accepts the TCP connection but where nothing ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # never accept(): the handshake completes, no byte comes back
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


class _SlowTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        time.sleep(20)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def slow_receiver() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_SlowTraceService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop(grace=0)


def _run_to_exit(endpoint: str, tmp_path: Path, **env: str):
    app = run_app(APP_THEN_EXIT, app_env(endpoint, **env), tmp_path, timeout=60)
    return app, time.time()


@pytest.mark.slow
@pytest.mark.parametrize("collector", ["refused", "blackhole", "slow"])
def test_exit_is_bounded_whatever_the_collector_does(
    collector: str, request: pytest.FixtureRequest, tmp_path: Path
):
    endpoint = {
        "refused": lambda: f"http://127.0.0.1:{free_port()}",
        "blackhole": lambda: request.getfixturevalue("blackhole"),
        "slow": lambda: request.getfixturevalue("slow_receiver"),
    }[collector]()
    # Metrics on too (the distro default): their exporter must fit in the same bound.
    app, ended = _run_to_exit(endpoint, tmp_path, OTEL_METRICS_EXPORTER="otlp")

    assert app.returncode == 0, app.stderr
    seconds = exit_seconds(app.stdout, ended)
    print(f"exit with a {collector} collector: {seconds:.2f} s")
    assert seconds < 8.0, app.stderr
    summary = [line for line in app.stderr.splitlines() if "could not be exported" in line]
    assert len(summary) == 1, app.stderr
    assert "100 spans" in summary[0], summary[0]


@pytest.mark.slow
def test_exit_bound_is_configurable(tmp_path: Path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    app, ended = _run_to_exit(endpoint, tmp_path, OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS="1000")
    assert app.returncode == 0, app.stderr
    assert exit_seconds(app.stdout, ended) < 3.5, app.stderr


def test_exit_with_a_healthy_collector_delivers_everything(tmp_path: Path):
    with OtlpTraceReceiver() as receiver:
        app, _ = _run_to_exit(
            f"http://{receiver.endpoint}", tmp_path, OTEL_BSP_SCHEDULE_DELAY="60000"
        )
        assert app.returncode == 0, app.stderr
        spans = receiver.wait_for_spans(lambda s: len(s) >= 100, 10)
    assert len([s for s in spans if s.name == "SELECT"]) == 50
    assert "could not be exported" not in app.stderr


SIGTERM_APP = """
    import faulthandler, signal, sqlite3, sys, time
    from opentelemetry import trace

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test's diagnosis of a hang

    tracer = trace.get_tracer("otel_db.tests.reliability")
    connection = sqlite3.connect(":memory:")
    for _ in range(300):
        with tracer.start_as_current_span("job"):
            connection.execute("SELECT 1").fetchall()
    print("ready", flush=True)
    time.sleep(60)  # a server waiting for requests; SIGTERM arrives here
"""


SIGTERM_EXIT_WITHIN_S = 30


@pytest.mark.slow
def test_sigterm_flushes_the_queue_then_dies_of_sigterm(tmp_path: Path):
    script = tmp_path / "server.py"
    import textwrap

    script.write_text(textwrap.dedent(SIGTERM_APP))
    with OtlpTraceReceiver() as receiver:
        # A long schedule delay: without the SIGTERM flush, nothing would be sent.
        env = app_env(f"http://{receiver.endpoint}", OTEL_BSP_SCHEDULE_DELAY="60000")
        process = subprocess.Popen(
            [instrument_command(), sys.executable, str(script)],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout.readline().strip() == "ready"
            process.send_signal(signal.SIGTERM)
            # The exit bound is 5 s; the rest is slack for a loaded CI machine.
            _, stderr = process.communicate(timeout=SIGTERM_EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # every thread's stack, to stderr
            time.sleep(2)
            process.kill()
            _, stderr = process.communicate(timeout=10)
            pytest.fail(f"still running {SIGTERM_EXIT_WITHIN_S} s after SIGTERM:\n{stderr}")
        finally:
            if process.poll() is None:
                process.kill()
        spans = receiver.spans()
    assert process.returncode == -signal.SIGTERM, stderr
    assert len(spans) == 600, stderr
