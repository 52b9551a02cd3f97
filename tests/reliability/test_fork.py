"""gunicorn --preload style: configure in the parent, fork workers, every worker exports.

Each child gets a fresh export thread, an empty buffer and a fresh gRPC channel
(``os.register_at_fork``); its spans are flushed by its own bounded exit hook.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack.otlp_receiver import OtlpTraceReceiver

from .conftest import app_env, run_app

FORKING_APP = """
    import os, sqlite3, sys
    from opentelemetry import trace

    tracer = trace.get_tracer("otel_db.tests.reliability")
    children = []
    for n in range(3):
        pid = os.fork()
        if pid == 0:
            connection = sqlite3.connect(":memory:")
            for _ in range(10):
                with tracer.start_as_current_span(f"worker-{n}"):
                    connection.execute("SELECT 1").fetchall()
            sys.exit(0)  # a normal exit: atexit hooks run in the child
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    print("app ran")
"""


@pytest.mark.slow
def test_every_forked_worker_exports(tmp_path: Path):
    with OtlpTraceReceiver() as receiver:
        env = app_env(f"http://{receiver.endpoint}", OTEL_BSP_SCHEDULE_DELAY="60000")
        app = run_app(FORKING_APP, env, tmp_path)
        assert app.returncode == 0, app.stderr
        spans = receiver.wait_for_spans(lambda s: len(s) >= 60, 15)
    names = [s.name for s in spans]
    for n in range(3):
        assert names.count(f"worker-{n}") == 10, app.stderr
    assert names.count("SELECT") == 30
