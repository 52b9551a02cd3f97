"""End to end: an app under opentelemetry-instrument -> rotel (a real OTLP collector)
-> a real OTLP/gRPC receiver. Proves the distro's spans survive a collector hop with
their otel_db attributes and resource intact. No Docker needed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from otel_db import attributes as attr

from .conftest import REPO_ROOT, Rotel
from .otlp_receiver import OtlpTraceReceiver

EMIT_SPANS = Path(__file__).with_name("emit_spans.py")


def instrumented_env(rotel: Rotel, run_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "OTEL_SERVICE_NAME": "otel-db-stack-e2e",
            "OTEL_RESOURCE_ATTRIBUTES": f"test.run_id={run_id}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": rotel.grpc_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    return env


@pytest.mark.slow
def test_spans_cross_rotel_intact(otlp_receiver: OtlpTraceReceiver, rotel_collector: Rotel):
    instrument = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    assert instrument, "opentelemetry-instrument not installed next to this python"
    run_id = uuid.uuid4().hex

    app = subprocess.run(
        [instrument, sys.executable, str(EMIT_SPANS)],
        env=instrumented_env(rotel_collector, run_id),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert app.returncode == 0, app.stderr

    def arrived(spans):
        names = {s.name for s in spans}
        sqlite = [
            s
            for s in spans
            if s.attributes.get(attr.LEGACY_DB_SYSTEM) == "sqlite"
            or s.attributes.get(attr.DB_SYSTEM_NAME) == "sqlite"
        ]
        return {"GET /orders", "SELECT orders"} <= names and len(sqlite) >= 5

    try:
        spans = otlp_receiver.wait_for_spans(arrived, timeout=20)
    except TimeoutError as error:
        pytest.fail(f"{error}\napp stderr:\n{app.stderr}\nrotel log:\n{rotel_collector.log()}")

    by_name = {s.name: s for s in spans}
    request = by_name["GET /orders"]
    assert request.attributes[attr.N_PLUS_ONE_DETECTED] is True
    assert request.attributes[attr.N_PLUS_ONE_COUNT] == 3
    assert request.attributes[attr.QUERY_COUNT] == 5

    slow = by_name["SELECT orders"]
    assert slow.attributes[attr.QUERY_SLOW] is True
    assert slow.attributes[attr.QUERY_SLOW_THRESHOLD_MS] == 500.0
    assert slow.attributes[attr.POOL_UTILIZATION] == 0.9
    assert slow.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert slow.span.parent_span_id == request.span.span_id
    assert slow.span.trace_id == request.span.trace_id

    # the sqlite3 statements made by the instrumented driver, under the request (through
    # the transaction span the driver's implicit BEGIN opened, for the DML and what follows)
    by_id = {s.span.span_id: s for s in spans}

    def under_request(span) -> bool:
        parent = by_id.get(span.span.parent_span_id)
        while parent is not None and attr.TRANSACTION_ID in parent.attributes:
            parent = by_id.get(parent.span.parent_span_id)
        return parent is request

    statements = [
        s
        for s in spans
        if s is not slow
        and attr.TRANSACTION_STATEMENT_COUNT not in s.attributes
        and under_request(s)
    ]
    assert len(statements) >= 5
    texts = [
        s.attributes.get(attr.DB_QUERY_TEXT, s.attributes.get(attr.LEGACY_DB_STATEMENT))
        for s in statements
    ]
    assert any(t and "FROM orders" in t for t in texts), texts

    # resource: what the SDK (and the distro) set, unchanged by the hop
    for span in spans:
        resource = span.resource_attributes
        assert resource["service.name"] == "otel-db-stack-e2e"
        assert resource["test.run_id"] == run_id
        assert resource["telemetry.sdk.language"] == "python"


DEMO_APP = REPO_ROOT / "examples" / "app.py"


@pytest.mark.slow
def test_demo_app_spans_cross_rotel_with_otel_db_attributes(
    otlp_receiver: OtlpTraceReceiver, rotel_collector: Rotel, tmp_path: Path
):
    instrument = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    assert instrument, "opentelemetry-instrument not installed next to this python"
    run_id = uuid.uuid4().hex
    app = subprocess.run(
        [instrument, sys.executable, str(DEMO_APP)],
        env=instrumented_env(rotel_collector, run_id),
        cwd=tmp_path,  # the demo's SQLite file lands here
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert app.returncode == 0, app.stderr

    def arrived(spans):
        return {"GET /orders", "GET /reports/sales", "POST /customers"} <= {s.name for s in spans}

    try:
        spans = otlp_receiver.wait_for_spans(arrived, timeout=20)
    except TimeoutError as error:
        pytest.fail(f"{error}\napp stderr:\n{app.stderr}\nrotel log:\n{rotel_collector.log()}")

    by_id = {s.span.span_id: s for s in spans}

    def app_parent(span):
        """The nearest ancestor that is not a transaction/savepoint span."""
        parent = by_id.get(span.span.parent_span_id)
        while parent is not None and attr.TRANSACTION_STATEMENT_COUNT in parent.attributes:
            parent = by_id.get(parent.span.parent_span_id)
        return parent

    db_spans = [
        s
        for s in spans
        if s.attributes.get(attr.DB_SYSTEM_NAME) == "sqlite"
        and attr.TRANSACTION_STATEMENT_COUNT not in s.attributes
    ]
    slow = [s for s in db_spans if s.attributes.get(attr.QUERY_SLOW) is True]
    assert len(slow) == 1
    assert slow[0].attributes[attr.QUERY_SLOW_THRESHOLD_MS] == 500.0
    assert app_parent(slow[0]).name == "GET /reports/sales"
    lazy_loads = [
        s for s in db_spans if app_parent(s) is not None and app_parent(s).name == "GET /orders"
    ]
    assert len(lazy_loads) >= 9  # one for the orders, one per order's customer
    # one span per statement: SQLAlchemy's, with no sqlite3 driver span beside it
    assert {s.scope_name for s in lazy_loads} == {"otel_db.instrumentation.sqlalchemy"}
    for span in spans:
        resource = span.resource_attributes
        assert resource[attr.TELEMETRY_DISTRO_NAME] == "otel_db"
        assert resource["test.run_id"] == run_id
