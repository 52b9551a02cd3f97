from __future__ import annotations

import io

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from otel_db import attributes as attr
from otel_db.exporters.terminal import TerminalSpanExporter


def test_prints_the_database_spans_of_a_trace_as_a_tree_once_the_root_ends():
    out = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(TerminalSpanExporter(out)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /orders"):
        with tracer.start_as_current_span("render"):
            pass  # no database work: not shown
        with tracer.start_as_current_span(
            "SELECT orders",
            kind=SpanKind.CLIENT,
            attributes={
                attr.DB_SYSTEM_NAME: "postgresql",
                attr.DB_QUERY_TEXT: "SELECT * FROM orders WHERE id = ?",
                attr.POOL_USED: 2,
                attr.POOL_MAX: 5,
                attr.TRANSACTION_OUTCOME: "committed",
                attr.QUERY_SLOW: True,
                attr.QUERY_SLOW_THRESHOLD_MS: 500.0,
            },
        ):
            pass
        assert out.getvalue() == ""  # held until the root span ends
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0].startswith("trace ")
    assert lines[1].startswith("└─ GET /orders")
    assert "render" not in text
    assert "SELECT orders" in lines[2]
    assert "pool 2/5" in lines[2] and "tx committed" in lines[2] and "SLOW" in lines[2]
    assert "SELECT * FROM orders WHERE id = ?" in lines[3]


def test_shutdown_prints_traces_whose_root_never_arrived():
    out = io.StringIO()
    exporter = TerminalSpanExporter(out)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    root = tracer.start_span("job")
    from opentelemetry import trace

    with trace.use_span(root):
        tracer.start_span(
            "INSERT jobs", kind=SpanKind.CLIENT, attributes={attr.DB_SYSTEM_NAME: "sqlite"}
        ).end()
    exporter.shutdown()
    assert "INSERT jobs" in out.getvalue()


def test_detail_lines_show_the_n_plus_one_offender_and_the_plan():
    from otel_db.exporters.terminal_format import detail_lines, markers

    parent = {
        attr.N_PLUS_ONE_DETECTED: True,
        attr.N_PLUS_ONE_COUNT: 8,
        attr.N_PLUS_ONE_QUERY: "SELECT customers",
        attr.QUERY_COUNT: 9,
    }
    assert markers(parent) == ["N+1 detected: 8x", "9 queries"]
    assert detail_lines(parent) == ["N+1: SELECT customers"]
    failed = {
        attr.DB_SYSTEM_NAME: "postgresql",
        attr.DB_QUERY_TEXT: "INSERT INTO t VALUES (?)",
        attr.ERROR_CATEGORY: "deadlock",
        attr.DB_RESPONSE_STATUS_CODE: "40P01",
        attr.ERROR_RETRYABLE: True,
        attr.QUERY_EXPLAIN: "Seq Scan on t\n  Filter: x",
    }
    assert markers(failed) == ["error deadlock 40P01 retryable"]
    assert detail_lines(failed) == ["INSERT INTO t VALUES (?)", "plan: Seq Scan on t"]
