from __future__ import annotations

import io
import re

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from otel_db import attributes as attr
from otel_db.exporters.terminal import TerminalSpanExporter
from otel_db.exporters.terminal_format import LEGEND, detail_lines, markers, render_trace


def _provider(exporter: TerminalSpanExporter) -> trace.Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def _trees(text: str) -> list[list[str]]:
    """The printed trees, each a list of lines starting with its ``trace`` line."""
    trees: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("trace "):
            trees.append([line])
        elif trees and line:
            trees[-1].append(line)
    return trees


def test_prints_the_database_spans_of_a_trace_as_a_tree_once_the_root_ends():
    out = io.StringIO()
    tracer = _provider(TerminalSpanExporter(out))
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
    assert text.startswith("\n".join(LEGEND))
    [lines] = _trees(text)
    assert lines[1].startswith("└─ GET /orders")
    assert "render" not in text
    assert "SELECT orders" in lines[2]
    assert "pool 2/5 in use" in lines[2] and "tx committed" in lines[2]
    assert "SLOW (>= 500 ms)" in lines[2]
    assert "SELECT * FROM orders WHERE id = ?" in lines[3]


def test_the_legend_is_printed_once_and_explains_every_outcome():
    out = io.StringIO()
    tracer = _provider(TerminalSpanExporter(out))
    for _ in range(2):
        with tracer.start_as_current_span("job"):
            tracer.start_span(
                "SELECT t", kind=SpanKind.CLIENT, attributes={attr.DB_SYSTEM_NAME: "sqlite"}
            ).end()
    text = out.getvalue()
    assert text.count(LEGEND[0]) == 1 and len(_trees(text)) == 2
    legend = "\n".join(LEGEND)
    for outcome in ("committed", "rolled_back", "released", "unknown"):
        assert outcome in legend
    for label in ("pool 1/15 in use", "waited", "statements", "SLOW", "N+1 3/8", "library:"):
        assert label in legend


def test_shutdown_prints_traces_whose_root_never_arrived():
    out = io.StringIO()
    exporter = TerminalSpanExporter(out)
    tracer = _provider(exporter)
    root = tracer.start_span("job")
    with trace.use_span(root):
        tracer.start_span(
            "INSERT jobs", kind=SpanKind.CLIENT, attributes={attr.DB_SYSTEM_NAME: "sqlite"}
        ).end()
    exporter.shutdown()
    assert "INSERT jobs" in out.getvalue()


def _transaction(tracer, outcome: str, statements: int, **extra):
    return tracer.start_span(
        "TRANSACTION shop",
        kind=SpanKind.CLIENT,
        attributes={
            attr.DB_SYSTEM_NAME: "sqlite",
            attr.TRANSACTION_ID: "tx-1",
            attr.TRANSACTION_OUTCOME: outcome,
            attr.TRANSACTION_STATEMENT_COUNT: statements,
            **extra,
        },
    )


def _statement(tracer, name: str, **extra):
    return tracer.start_span(
        name,
        kind=SpanKind.CLIENT,
        attributes={attr.DB_SYSTEM_NAME: "sqlite", attr.DB_QUERY_TEXT: name, **extra},
    )


def test_a_transaction_root_whose_statements_arrive_after_it_is_printed_once_whole():
    """Library mode: the transaction span is the root and ends (is exported) before the
    statement held until its outcome was known."""
    out = io.StringIO()
    exporter = TerminalSpanExporter(out, settle_s=60)
    tracer = _provider(exporter)
    transaction = _transaction(tracer, "committed", 2)
    with trace.use_span(transaction, end_on_exit=False):
        first = _statement(tracer, "SELECT a", **{attr.TRANSACTION_ID: "tx-1"})
        second = _statement(tracer, "SELECT b", **{attr.TRANSACTION_ID: "tx-1"})
    transaction.end()
    assert out.getvalue() == ""  # two statements counted, none arrived yet
    first.end()
    assert out.getvalue() == ""
    second.end()
    trees = _trees(out.getvalue())
    assert len(trees) == 1
    assert [re.sub(r"  [\d.]+ ms.*", "", line) for line in trees[0][1:] if "─" in line] == [
        "└─ TRANSACTION shop",
        "   ├─ SELECT a",
        "   └─ SELECT b",
    ]


def test_an_incomplete_trace_is_printed_after_the_settle_time_or_at_shutdown():
    out = io.StringIO()
    exporter = TerminalSpanExporter(out, settle_s=0)
    tracer = _provider(exporter)
    _transaction(tracer, "committed", 3).end()  # its statements were dropped
    assert len(_trees(out.getvalue())) == 1
    out2 = io.StringIO()
    exporter2 = TerminalSpanExporter(out2, settle_s=60)
    _transaction(_provider(exporter2), "committed", 3).end()
    assert out2.getvalue() == ""
    exporter2.shutdown()
    assert len(_trees(out2.getvalue())) == 1


def test_the_transaction_outcome_is_said_on_the_transaction_line_not_each_statement():
    out = io.StringIO()
    tracer = _provider(TerminalSpanExporter(out))
    with tracer.start_as_current_span("POST /orders"):
        transaction = _transaction(tracer, "committed", 3)
        with trace.use_span(transaction, end_on_exit=True):
            pool = {
                attr.POOL_USED: 1,
                attr.POOL_MAX: 15,
                attr.TRANSACTION_ID: "tx-1",
                attr.TRANSACTION_OUTCOME: "committed",
            }
            _statement(tracer, "INSERT a", **pool).end()
            _statement(tracer, "INSERT b", **pool).end()
            differs = {**pool, attr.TRANSACTION_OUTCOME: "rolled_back"}
            _statement(tracer, "INSERT c", **differs).end()
    text = out.getvalue()
    [lines] = _trees(text)
    line_of = {line.split("─ ")[1].split("  ")[0]: line for line in lines if "─ " in line}
    assert "tx committed" in line_of["TRANSACTION shop"]
    assert "tx" not in line_of["INSERT a"] and "tx" not in line_of["INSERT b"]
    assert "tx rolled_back" in line_of["INSERT c"]  # its own outcome differs: said
    # the pool reading is said when it changes, not on every statement
    assert "pool 1/15 in use" in line_of["INSERT a"]
    assert "pool" not in line_of["INSERT b"] and "pool" not in line_of["INSERT c"]


def test_every_statement_of_a_detected_n_plus_one_run_is_marked():
    """The detector flags the repeats from the threshold on; the view marks them all,
    so the request's count and the markers agree."""
    out = io.StringIO()
    tracer = _provider(TerminalSpanExporter(out))
    with tracer.start_as_current_span("GET /orders") as request:
        _statement(tracer, "SELECT orders", **{attr.QUERY_FINGERPRINT: "f0"}).end()
        for n in range(8):
            flag = {attr.N_PLUS_ONE: True} if n >= 4 else {}
            _statement(tracer, "SELECT customers", **{attr.QUERY_FINGERPRINT: "f1"}, **flag).end()
        request.set_attributes(
            {
                attr.N_PLUS_ONE_DETECTED: True,
                attr.N_PLUS_ONE_COUNT: 8,
                attr.N_PLUS_ONE_QUERY: "SELECT customers",
                attr.QUERY_COUNT: 9,
            }
        )
    [lines] = _trees(out.getvalue())
    assert "[9 statements · N+1 detected: 8x]" in lines[1]
    marked = [line for line in lines if "N+1 " in line and "SELECT customers  " in line]
    assert [line.rsplit("N+1 ", 1)[1].rstrip("]") for line in marked] == [
        f"{k}/8" for k in range(1, 9)
    ]
    assert not any("N+1" in line for line in lines if "SELECT orders  " in line)


def test_statements_the_library_issues_itself_are_folded_into_one_line():
    out = io.StringIO()
    tracer = _provider(TerminalSpanExporter(out))
    with tracer.start_as_current_span("seed"):
        _statement(tracer, "PRAGMA read_uncommitted").end()
        setup = _transaction(tracer, "rolled_back", 2)
        with trace.use_span(setup, end_on_exit=True):
            _statement(tracer, "select pg_catalog.version()", **{attr.TRANSACTION_ID: "tx-1"}).end()
            _statement(
                tracer, "show standard_conforming_strings", **{attr.TRANSACTION_ID: "tx-1"}
            ).end()
        _statement(tracer, "INSERT INTO t VALUES (?)").end()
    [lines] = _trees(out.getvalue())
    assert lines[2].startswith("   ├─ library: 3 statements: PRAGMA read_uncommitted, select pg_")
    assert "TRANSACTION" not in "\n".join(lines)
    assert lines[3].startswith("   └─ INSERT INTO t VALUES (?)")


def test_a_failed_library_looking_statement_is_not_folded():
    tracer_out = io.StringIO()
    tracer = _provider(TerminalSpanExporter(tracer_out, legend=False))
    with tracer.start_as_current_span("job"):
        _statement(tracer, "PRAGMA read_uncommitted", **{attr.ERROR_CATEGORY: "other"}).end()
    assert "library:" not in tracer_out.getvalue()


def test_library_lines_are_dimmed_on_a_terminal_only():
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("job") as root:
        span = _statement(tracer, "PRAGMA read_uncommitted")
        span.end()
    spans = [span, root]
    assert any("\x1b[2m" in line for line in render_trace(spans, dim=True))
    assert not any("\x1b" in line for line in render_trace(spans, dim=False))


def test_markers_and_detail_lines_explain_themselves():
    parent = {
        attr.N_PLUS_ONE_DETECTED: True,
        attr.N_PLUS_ONE_COUNT: 8,
        attr.N_PLUS_ONE_QUERY: "SELECT customers",
        attr.QUERY_COUNT: 9,
    }
    assert markers(parent) == ["9 statements", "N+1 detected: 8x"]
    assert markers({attr.QUERY_COUNT: 1}) == ["1 statement"]
    assert detail_lines(parent) == ["N+1: SELECT customers ran 8 times (each marked N+1 below)"]
    waited = {attr.POOL_USED: 3, attr.POOL_MAX: 15, attr.POOL_WAIT_MS: 12.4}
    assert markers(waited) == ["pool 3/15 in use, waited 12 ms"]
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


def test_a_statement_run_again_is_not_printed_again():
    out = io.StringIO()
    tracer = _provider(TerminalSpanExporter(out, legend=False))
    with tracer.start_as_current_span("GET /orders"):
        for name in ("SELECT a", "SELECT b", "SELECT b", "SELECT b", "SELECT a"):
            _statement(tracer, name).end()
    [lines] = _trees(out.getvalue())
    texts = [line.strip(" │") for line in lines if "─" not in line and not line.startswith("trace")]
    assert texts == ["SELECT a", "SELECT b", "SELECT a"]


def test_a_redis_multi_exec_pipeline_span_does_not_wait_for_statements():
    """The contract's MULTI/EXEC rule: the pipeline span carries the transaction's id,
    outcome and statement count, and has no statement spans under it."""
    out = io.StringIO()
    tracer = _provider(TerminalSpanExporter(out, settle_s=60, legend=False))
    with tracer.start_as_current_span("POST /cart"):
        tracer.start_span(
            "MULTI",
            kind=SpanKind.CLIENT,
            attributes={
                attr.DB_SYSTEM_NAME: "redis",
                attr.TRANSACTION_ID: "tx-9",
                attr.TRANSACTION_OUTCOME: "committed",
                attr.TRANSACTION_STATEMENT_COUNT: 3,
                attr.DB_OPERATION_BATCH_SIZE: 3,
            },
        ).end()
    [lines] = _trees(out.getvalue())
    assert "MULTI" in lines[2] and "tx committed" in lines[2]
