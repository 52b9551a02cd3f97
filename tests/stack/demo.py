"""Runs examples/app.py under opentelemetry-instrument against PostgreSQL and Redis, in a
database of its own (the demo drops and recreates its tables), as docker-compose.yml's
``app`` service runs it: same OTEL_* settings, addresses moved to 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL, REDIS_URL

from .conftest import REPO_ROOT

APP = REPO_ROOT / "examples" / "app.py"


def compose_app_env() -> dict[str, str]:
    """The app service's environment in docker-compose.yml, ${VAR:-default} resolved."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["app"]["environment"]
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


@contextmanager
def demo_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one demo run; its SQLAlchemy URL."""
    import psycopg2

    name = f"otel_db_stack_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(POSTGRES_URL)
        yield urlunsplit(("postgresql+psycopg2", parts.netloc, f"/{name}", "", ""))
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def demo_env(otlp_grpc: str, database_url: str, service: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DEMO_"))}
    env.update(compose_app_env())
    env.update(
        {
            "OTEL_SERVICE_NAME": service,
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otlp_grpc}",
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            # export promptly: the tests wait on what arrives, not on the SDK's timers
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
            "DEMO_INTERVAL_SECONDS": "0",
        }
    )
    env.update(extra)
    return env


def instrument() -> str:
    found = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    assert found, "opentelemetry-instrument not installed next to this python"
    return found


def start_demo(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [instrument(), sys.executable, str(APP)],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def run_demo(env: dict[str, str], log: Path, timeout: float) -> str:
    process = start_demo(env, log)
    try:
        process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    output = log.read_text(errors="replace")
    assert process.returncode == 0, f"demo failed ({process.returncode}):\n{output[-3000:]}"
    return output


def console_spans(output: str) -> list[dict]:
    """The spans the SDK's console exporter printed (pretty JSON, each from a '{' line)."""
    decoder = json.JSONDecoder()
    output = "\n" + output  # the first span may open the output
    spans, position = [], 0
    while (start := output.find("\n{\n", position)) != -1:
        span, end = decoder.raw_decode(output, start + 1)
        spans.append(span)
        position = end
    return spans


def kept_by_policy(span: dict) -> bool:
    """collector.yaml's tail-sampling policies other than the probabilistic baseline."""
    attributes = span["attributes"]
    return (
        span["status"]["status_code"] == "ERROR"
        or attributes.get(attr.QUERY_SLOW) is True
        or attributes.get(attr.N_PLUS_ONE_DETECTED) is True
        or attributes.get(attr.TRANSACTION_OUTCOME) == attr.OUTCOME_ROLLED_BACK
    )


@dataclass
class AppTrace:
    """One trace as the app recorded it (OTEL_TRACES_EXPORTER=otlp,console)."""

    spans: int = 0
    root: str = ""
    start: float = 0.0
    flagged: bool = False
    outcomes: set[str] = field(default_factory=set)


def app_traces(output: str) -> dict[str, AppTrace]:
    """trace id (hex, as Jaeger shows it) -> what the app produced for it."""
    traces: dict[str, AppTrace] = {}
    for span in console_spans(output):
        trace = traces.setdefault(span["context"]["trace_id"].removeprefix("0x"), AppTrace())
        trace.spans += 1
        trace.flagged = trace.flagged or kept_by_policy(span)
        if attr.TRANSACTION_OUTCOME in span["attributes"]:
            trace.outcomes.add(span["attributes"][attr.TRANSACTION_OUTCOME])
        if span["parent_id"] is None:
            trace.root = span["name"]
            started = datetime.fromisoformat(span["start_time"].replace("Z", "+00:00"))
            trace.start = started.timestamp()
    return traces
