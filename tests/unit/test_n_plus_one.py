"""N+1 detection through the real enrichment stage, with hand-made statement spans."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_db import attributes as attr
from otel_db.enrichers import n_plus_one
from otel_db.enrichers.n_plus_one import NPlusOneDetector
from otel_db.enrichers.query_shape import QueryShapeEnricher
from otel_db.pipeline.stage import EnrichmentStage


@pytest.fixture
def pipeline():
    exporter = InMemorySpanExporter()
    detector = NPlusOneDetector(threshold=5)
    provider = TracerProvider()
    stage = EnrichmentStage([QueryShapeEnricher(), detector], SimpleSpanProcessor(exporter))
    provider.add_span_processor(stage)
    yield provider.get_tracer("test"), exporter, detector
    provider.shutdown()


def _statement(tracer, text, system="postgresql"):
    with tracer.start_as_current_span(
        "q",
        kind=SpanKind.CLIENT,
        attributes={attr.DB_SYSTEM_NAME: system, attr.DB_QUERY_TEXT: text},
    ):
        pass


def _by_name(exporter, name):
    return next(s for s in exporter.get_finished_spans() if s.name == name)


def test_repeated_fingerprint_flags_the_parent_and_the_statements(pipeline):
    tracer, exporter, detector = pipeline
    with tracer.start_as_current_span("GET /orders"):
        _statement(tracer, "SELECT * FROM orders")
        for order_id in range(7):
            _statement(tracer, f"SELECT * FROM items WHERE order_id = {order_id}")
    parent = _by_name(exporter, "GET /orders")
    assert parent.attributes[attr.N_PLUS_ONE_DETECTED] is True  # written when it ends
    assert parent.attributes[attr.N_PLUS_ONE_COUNT] == 7
    assert parent.attributes[attr.N_PLUS_ONE_QUERY] == "SELECT items"
    assert parent.attributes[attr.QUERY_COUNT] == 8
    flags = [
        s.attributes.get(attr.N_PLUS_ONE, False)
        for s in exporter.get_finished_spans()
        if s.name == "SELECT items"
    ]
    assert flags == [False] * 4 + [True] * 3  # from the statement that reached the threshold
    assert detector._parents == {} and detector._ancestors == {}  # dropped with the parent


def test_one_query_per_table_and_a_batched_in_are_not_flagged(pipeline):
    tracer, exporter, _ = pipeline
    with tracer.start_as_current_span("request"):
        for table in ("users", "orders", "items", "invoices", "payments", "refunds"):
            _statement(tracer, f"SELECT * FROM {table} WHERE id = 1")
        _statement(tracer, "SELECT * FROM items WHERE order_id IN (1, 2, 3, 4, 5, 6)")
    parent = _by_name(exporter, "request")
    assert attr.N_PLUS_ONE_DETECTED not in parent.attributes
    assert parent.attributes[attr.QUERY_COUNT] == 7


def test_statements_inside_a_transaction_span_count_for_the_application_span(pipeline):
    tracer, exporter, _ = pipeline
    with (
        tracer.start_as_current_span("job"),
        tracer.start_as_current_span(
            "TRANSACTION",
            kind=SpanKind.CLIENT,
            attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.TRANSACTION_ID: "t1"},
        ),
    ):
        for n in range(5):
            _statement(tracer, f"SELECT * FROM users WHERE id = {n}")
    job = _by_name(exporter, "job")
    transaction = _by_name(exporter, "TRANSACTION")
    assert job.attributes[attr.N_PLUS_ONE_COUNT] == 5
    assert attr.QUERY_COUNT not in transaction.attributes


def test_a_transaction_begun_after_the_first_statements_still_counts_for_its_parent(pipeline):
    # The later statements of an application span are counted through its id when
    # they end; a transaction span begun then must still lead its statements there.
    tracer, exporter, detector = pipeline
    with tracer.start_as_current_span("job"):
        _statement(tracer, "SELECT * FROM users WHERE id = 0")
        _statement(tracer, "SELECT * FROM users WHERE id = 1")
        with tracer.start_as_current_span(
            "TRANSACTION",
            kind=SpanKind.CLIENT,
            attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.TRANSACTION_ID: "t1"},
        ):
            for n in range(2, 6):
                _statement(tracer, f"SELECT * FROM users WHERE id = {n}")
        _statement(tracer, "SELECT * FROM orders")
    job = _by_name(exporter, "job")
    assert job.attributes[attr.QUERY_COUNT] == 7
    assert job.attributes[attr.N_PLUS_ONE_COUNT] == 6
    flags = [s.attributes.get(attr.N_PLUS_ONE, False) for s in exporter.get_finished_spans()]
    assert flags.count(True) == 2  # the 5th and 6th users query, one of them in the transaction
    assert detector._parents == {} and detector._ancestors == {}


@pytest.mark.parametrize(
    ("first", "second", "worst"),
    [(6, 7, "SELECT orders"), (7, 6, "SELECT users")],
)
def test_the_worst_repetition_names_the_query(pipeline, first, second, worst):
    tracer, exporter, _ = pipeline
    with tracer.start_as_current_span("job"):
        for n in range(first):
            _statement(tracer, f"SELECT * FROM users WHERE id = {n}")
        for n in range(second):
            _statement(tracer, f"SELECT * FROM orders WHERE id = {n}")
    job = _by_name(exporter, "job")
    assert job.attributes[attr.N_PLUS_ONE_QUERY] == worst
    assert job.attributes[attr.N_PLUS_ONE_COUNT] == 7


def test_redis_commands_on_different_keys_share_a_fingerprint(pipeline):
    tracer, exporter, _ = pipeline
    with tracer.start_as_current_span("worker"):
        for _ in range(5):
            _statement(tracer, "GET ?", system="redis")
    assert _by_name(exporter, "worker").attributes[attr.N_PLUS_ONE_QUERY] == "GET ?"


def test_statements_without_a_parent_are_not_tracked(pipeline):
    tracer, _, detector = pipeline
    for _ in range(10):
        _statement(tracer, "SELECT 1")
    assert detector._ancestors == {} and detector._parents == {}


def test_statements_under_a_root_transaction_span_are_not_counted_and_state_is_bounded(
    pipeline, monkeypatch
):
    # A transaction with no application span above it (a script's autobegin): its
    # statements count for nobody; the transaction is remembered once as a dead end
    # (no lookups per statement), within the span bound.
    tracer, exporter, detector = pipeline
    monkeypatch.setattr(n_plus_one, "MAX_TRACKED_SPANS", 4)
    for t in range(10):
        with tracer.start_as_current_span(
            "TRANSACTION",
            kind=SpanKind.CLIENT,
            attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.TRANSACTION_ID: f"t{t}"},
        ):
            for n in range(6):
                _statement(tracer, f"SELECT * FROM users WHERE id = {n}")
    spans = exporter.get_finished_spans()
    assert len(spans) == 70
    assert not any(attr.N_PLUS_ONE in span.attributes for span in spans)
    assert not any(attr.QUERY_COUNT in span.attributes for span in spans)
    assert detector._ancestors == {} and detector._parents == {}
    assert 0 < len(detector._dead_ends) <= 4


def test_a_root_transaction_span_is_a_dead_end_from_its_start(pipeline):
    # What the tracker starts (a statement count of 0 from the start): noted as the span
    # starts, so that its statements stop at the first lookup (with the SDK's fields
    # verified; otherwise at its first statement, as before); a root statement is not.
    tracer, exporter, detector = pipeline
    with tracer.start_as_current_span(
        "TRANSACTION",
        kind=SpanKind.CLIENT,
        attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.TRANSACTION_STATEMENT_COUNT: 0},
    ) as transaction:
        transaction_id = transaction.get_span_context().span_id
        assert list(detector._dead_ends) == ([transaction_id] if detector._fields else [])
        for n in range(6):
            _statement(tracer, f"SELECT * FROM users WHERE id = {n}")
    _statement(tracer, "SELECT 1")
    assert list(detector._dead_ends) == [transaction_id]
    spans = exporter.get_finished_spans()
    assert len(spans) == 8
    assert not any(attr.N_PLUS_ONE in span.attributes for span in spans)
    assert not any(attr.QUERY_COUNT in span.attributes for span in spans)
    assert detector._ancestors == {} and detector._parents == {}


def test_state_is_bounded_for_parents_that_never_end(pipeline, monkeypatch):
    tracer, _, detector = pipeline
    monkeypatch.setattr(n_plus_one, "MAX_TRACKED_PARENTS", 3)
    monkeypatch.setattr(n_plus_one, "MAX_TRACKED_SPANS", 4)
    opened = [tracer.start_span(f"never-ends-{n}") for n in range(10)]
    from opentelemetry import trace

    for parent in opened:
        with trace.use_span(parent, end_on_exit=False):
            _statement(tracer, "SELECT 1")
            tracer.start_span("child never ends either")
    assert len(detector._parents) <= 3 and len(detector._ancestors) <= 4


def test_threshold_zero_counts_but_never_flags():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        EnrichmentStage([QueryShapeEnricher(), NPlusOneDetector(0)], SimpleSpanProcessor(exporter))
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request"):
        for _ in range(20):
            _statement(tracer, "SELECT * FROM users WHERE id = 1")
    parent = _by_name(exporter, "request")
    assert parent.attributes[attr.QUERY_COUNT] == 20
    assert attr.N_PLUS_ONE_DETECTED not in parent.attributes
