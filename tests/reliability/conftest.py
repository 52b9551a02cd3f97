"""Helpers for the reliability tests: run a small app under the real launcher, in a
subprocess, against a real OTLP receiver on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.stack.otlp_receiver import OtlpTraceReceiver

REPO_ROOT = Path(__file__).resolve().parents[2]


def instrument_command() -> str:
    command = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    assert command, "opentelemetry-instrument is not installed next to this python"
    return command


def app_env(endpoint: str | None, **overrides: str) -> dict[str, str]:
    """A clean OTEL_* environment exporting traces over OTLP/gRPC to ``endpoint``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_SERVICE_NAME": "otel-db-reliability",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if endpoint is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    env.update(overrides)
    return env


@dataclass
class AppRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_app(
    script: str, env: dict[str, str], tmp_path: Path, timeout: float = 60, instrument: bool = True
) -> AppRun:
    """Run ``script`` (dedented) under opentelemetry-instrument; wall time included."""
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(script))
    command = (
        [instrument_command(), sys.executable, str(path)]
        if instrument
        else [
            sys.executable,
            str(path),
        ]
    )
    started = time.monotonic()
    done = subprocess.run(
        command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )
    return AppRun(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


#: A request span with one sqlite3 statement under it, then a marker on stdout.
SMALL_APP = """
    import sqlite3
    from opentelemetry import trace

    tracer = trace.get_tracer("otel_db.tests.reliability")
    with tracer.start_as_current_span("job"):
        connection = sqlite3.connect(":memory:")
        connection.execute("SELECT 1").fetchall()
        connection.close()
    print("app ran")
"""


@pytest.fixture
def receiver() -> Iterator[OtlpTraceReceiver]:
    with OtlpTraceReceiver() as running:
        yield running


def session_stages(kind: type) -> list:
    """Every stage of ``kind`` in the session pipeline (enrichers included), for tests
    that check what the real pipeline holds after a fault."""
    from opentelemetry import trace

    found: list = []
    provider = trace.get_tracer_provider()
    todo = list(getattr(provider._active_span_processor, "_span_processors", ()))
    while todo:
        stage = todo.pop()
        if isinstance(stage, kind):
            found.append(stage)
        todo.extend(e for e in getattr(stage, "enrichers", ()) if isinstance(e, kind))
        downstream = getattr(stage, "downstream", None)
        if downstream is not None:
            todo.append(downstream)
    return found


def held_spans() -> int:
    """Statement spans the session's transaction holding stage still holds."""
    from otel_db.pipeline.transaction_holding import TransactionHoldingStage

    (stage,) = session_stages(TransactionHoldingStage)
    return stage.held_count
