from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from otel_db import attributes as attr
from otel_db.enrichers.n_plus_one import NPlusOneDetector
from otel_db.enrichers.query_shape import QueryShapeEnricher
from otel_db.enrichers.slow_query import SlowQueryRule
from otel_db.instrumentation.parameter_capture import ContribParameterEnricher
from otel_db.pipeline.db_span import SPAN_ID
from otel_db.pipeline.deferred import DEFERRED, DeferredAttributes
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import EndFilter, SpanEnricher
from otel_db.pipeline.stage import EnrichmentStage


def _pipeline(*enrichers):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(EnrichmentStage(enrichers, SimpleSpanProcessor(exporter)))
    return provider.get_tracer("test"), exporter


def _db_span(tracer, duration_ns: int, **extra):
    span = tracer.start_span(
        "SELECT users",
        kind=SpanKind.CLIENT,
        start_time=1_000,
        attributes={attr.DB_SYSTEM_NAME: "postgresql", **extra},
    )
    span.end(end_time=1_000 + duration_ns)


def test_span_id_is_read_where_the_span_context_keeps_it():
    # The hot path indexes the SpanContext tuple instead of calling its property: an
    # SDK that moves the field must fail here, not lose deferred attributes silently.
    context = SpanContext(trace_id=0x1234, span_id=0xABCDEF, is_remote=False)
    assert context[SPAN_ID] == context.span_id == 0xABCDEF
    tracer, _ = _pipeline()
    span = tracer.start_span("x")
    assert span.get_span_context()[SPAN_ID] == span.get_span_context().span_id


def test_unchanged_span_is_passed_through_without_a_copy():
    tracer, exporter = _pipeline(SpanEnricher())
    span = tracer.start_span("plain")
    span.end()
    draft = SpanDraft(exporter.get_finished_spans()[0])
    assert draft.build() is draft.span


def test_slow_rule_flags_at_threshold_and_not_below():
    tracer, exporter = _pipeline(SlowQueryRule(200))
    _db_span(tracer, 200_000_000)
    _db_span(tracer, 199_999_999)
    slow, fast = exporter.get_finished_spans()
    assert slow.attributes[attr.QUERY_SLOW] is True
    assert slow.attributes[attr.QUERY_SLOW_THRESHOLD_MS] == 200.0
    assert attr.QUERY_SLOW not in fast.attributes
    assert attr.QUERY_SLOW_THRESHOLD_MS not in fast.attributes


def test_slow_rule_ignores_non_database_spans():
    tracer, exporter = _pipeline(SlowQueryRule(1))
    span = tracer.start_span("GET /orders", start_time=0)
    span.end(end_time=10_000_000_000)
    assert attr.QUERY_SLOW not in exporter.get_finished_spans()[0].attributes


class _Boom(SpanEnricher):
    name = "boom"

    def on_start(self, span, parent_context):
        raise RuntimeError("start failed")

    def on_end(self, draft):
        draft.set_attribute("half.written", True)
        raise RuntimeError("end failed")


def test_failing_enricher_is_contained_logged_once_and_the_span_still_exported(caplog):
    caplog.set_level(logging.WARNING, logger="otel_db")
    tracer, exporter = _pipeline(_Boom(), SlowQueryRule(0))
    for _ in range(3):
        _db_span(tracer, 5)
    exported = exporter.get_finished_spans()
    assert len(exported) == 3
    assert all(span.attributes[attr.QUERY_SLOW] for span in exported)
    messages = [r.getMessage() for r in caplog.records if "boom" in r.getMessage()]
    assert len([m for m in messages if "span start" in m]) == 1
    assert len([m for m in messages if "span end" in m]) == 1


def test_deferred_attributes_are_written_when_the_span_ends():
    tracer, exporter = _pipeline(SpanEnricher())
    span = tracer.start_span("SELECT", kind=SpanKind.CLIENT)
    DEFERRED.add(span, {attr.POOL_USED: 3})
    DEFERRED.add(span, {attr.TRANSACTION_ID: "ab"})
    assert attr.POOL_USED not in span.attributes  # the live span pays no SDK write
    span.end()
    (exported,) = exporter.get_finished_spans()
    assert exported.attributes[attr.POOL_USED] == 3
    assert exported.attributes[attr.TRANSACTION_ID] == "ab"
    assert DEFERRED.take(span.get_span_context().span_id) is None  # nothing left behind


def test_without_a_stage_deferred_attributes_go_on_the_live_span():
    registry = DeferredAttributes()
    span = TracerProvider().get_tracer("test").start_span("SELECT")
    registry.add(span, {attr.POOL_USED: 3})
    assert span.attributes[attr.POOL_USED] == 3 and len(registry) == 0


def test_deferred_attributes_of_spans_that_never_end_are_bounded():
    registry = DeferredAttributes(capacity=10)
    registry.consumer_started()
    tracer = TracerProvider().get_tracer("test")
    spans = [tracer.start_span(f"s{i}") for i in range(25)]
    for span in spans:
        registry.add(span, {attr.POOL_USED: 1})
    assert len(registry) == 10
    assert registry.take(spans[-1].get_span_context().span_id) == {attr.POOL_USED: 1}
    assert registry.take(spans[0].get_span_context().span_id) is None  # the oldest went first
    registry.consumer_stopped()
    assert len(registry) == 0


def test_handed_over_attributes_merge_like_added_ones_and_stay_bounded():
    registry = DeferredAttributes(capacity=3)
    span = TracerProvider().get_tracer("test").start_span("SELECT")
    registry.hand_over(span, {attr.POOL_USED: 1})  # no stage: on the live span at once
    assert span.attributes[attr.POOL_USED] == 1 and len(registry) == 0
    registry.consumer_started()
    try:
        tracer = TracerProvider().get_tracer("test")
        spans = [tracer.start_span(f"s{i}") for i in range(5)]
        for one in spans:
            registry.hand_over(one, {attr.POOL_USED: 2})
        registry.add(spans[-1], {attr.TRANSACTION_ID: "ab"})
        assert len(registry) == 3
        last = spans[-1].get_span_context().span_id
        assert registry.take(last) == {attr.POOL_USED: 2, attr.TRANSACTION_ID: "ab"}
        assert registry.take(spans[0].get_span_context().span_id) is None
    finally:
        registry.consumer_stopped()


def test_sampled_out_spans_leave_nothing_deferred():
    # A non-recording span never reaches the stage: an entry for it would only wait for
    # the cap, pushing out real spans' entries (transactions of sampled-out traces).
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from otel_db.transactions.tracker import TransactionTracker

    registry_size = len(DEFERRED)
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("test")
    tracker = TransactionTracker(tracer)
    _pipeline(SpanEnricher())  # a stage is running: entries would be kept for it
    connection = object()
    tracker.begin(connection, "TRANSACTION test", {attr.DB_SYSTEM_NAME: "postgresql"})
    statement = tracer.start_span("UPDATE", kind=SpanKind.CLIENT)
    tracker.statement_started(connection, statement)
    DEFERRED.add(statement, {attr.POOL_USED: 1})
    statement.end()
    tracker.end(connection, attr.OUTCOME_COMMITTED)
    assert len(DEFERRED) == registry_size


class _Seen(SpanEnricher):
    """Records the names of the spans whose end it was called for."""

    def __init__(self, name: str, end_filter: EndFilter) -> None:
        self.name = name
        self.end_filter = end_filter
        self.seen: list[str] = []

    def on_end(self, draft):
        self.seen.append(draft.span.name)

    def on_client_end(self, span, span_id, attributes):
        self.seen.append(span.name)
        return None


def test_end_filters_choose_the_spans_each_enricher_sees():
    # Untroubled client spans take the client lane, the others a draft: both filter.
    every = _Seen("every", EndFilter())
    client = _Seen("client", EndFilter(client_only=True))
    troubled = _Seen("troubled", EndFilter(troubled_only=True))
    slow_client = _Seen("slow client", EndFilter(client_only=True, min_duration_ns=1_000))
    keyed = _Seen("keyed", EndFilter(requires="app.key"))
    tracer, _ = _pipeline(every, client, troubled, slow_client, keyed)

    def span(name, kind=SpanKind.INTERNAL, duration=10, failed=False, event=False, **extra):
        live = tracer.start_span(name, kind=kind, start_time=1_000, attributes=extra)
        if failed:
            live.set_status(Status(StatusCode.ERROR, "boom"))
        if event:
            live.add_event("exception", {"exception.type": "ValueError"})
        live.end(end_time=1_000 + duration)

    span("internal")
    span("client fast", SpanKind.CLIENT)
    span("client slow", SpanKind.CLIENT, duration=1_000)
    span("client failed", SpanKind.CLIENT, failed=True)
    span("internal event", event=True)
    span("server failed", SpanKind.SERVER, failed=True)
    span("client keyed", SpanKind.CLIENT, **{"app.key": 1})
    span("internal keyed", **{"app.key": 1})

    assert every.seen == [
        "internal",
        "client fast",
        "client slow",
        "client failed",
        "internal event",
        "server failed",
        "client keyed",
        "internal keyed",
    ]
    assert client.seen == ["client fast", "client slow", "client failed", "client keyed"]
    assert troubled.seen == ["client failed", "internal event", "server failed"]
    assert slow_client.seen == ["client slow"]
    assert keyed.seen == ["client keyed", "internal keyed"]


class _DraftOnly(SpanEnricher):
    """Changes nothing, and has no client lane: every span then goes through a draft."""

    name = "draft only"

    def on_end(self, draft):
        pass


def _statements(tracer):
    with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER):
        for order_id in range(7):
            span = tracer.start_span(
                "SELECT",
                kind=SpanKind.CLIENT,
                start_time=1_000,
                attributes={
                    attr.DB_SYSTEM_NAME: "postgresql",
                    attr.DB_NAMESPACE: "shop",
                    attr.DB_QUERY_TEXT: f"SELECT * FROM orders WHERE id = {order_id}",
                    "db.statement.parameters": "(1,)",
                },
            )
            span.end(end_time=1_000 + (600_000_000 if order_id == 3 else 1_000))


def test_client_lane_exports_what_the_draft_path_exports():
    def enrichers():
        return [
            QueryShapeEnricher(sanitize=True),
            ContribParameterEnricher(capture=True),
            NPlusOneDetector(threshold=5),
            SlowQueryRule(500),
        ]

    lane_tracer, lane_exporter = _pipeline(*enrichers())
    draft_tracer, draft_exporter = _pipeline(*enrichers(), _DraftOnly())
    _statements(lane_tracer)
    _statements(draft_tracer)

    lane = [(s.name, dict(s.attributes)) for s in lane_exporter.get_finished_spans()]
    drafted = [(s.name, dict(s.attributes)) for s in draft_exporter.get_finished_spans()]
    assert lane == drafted
    statements = [attributes for name, attributes in lane if name != "GET /orders"]
    assert [a.get(attr.N_PLUS_ONE, False) for a in statements] == [False] * 4 + [True] * 3
    assert [a.get(attr.QUERY_SLOW, False) for a in statements].count(True) == 1
    assert all(a[attr.DB_QUERY_TEXT] == "SELECT * FROM orders WHERE id = ?" for a in statements)
    assert all("db.statement.parameters" not in a for a in statements)
    assert all(a["db.query.parameter.0"] == "1" for a in statements)
    assert lane[-1][1][attr.QUERY_COUNT] == 7


def test_client_lane_leaves_the_applications_span_as_it_was():
    # The lane enriches the ReadableSpan the SDK made for its processors, in place:
    # the application's own span object keeps its text, literal included, and its name.
    tracer, exporter = _pipeline(QueryShapeEnricher(sanitize=True))
    text = "SELECT * FROM orders WHERE id = 42"
    live = tracer.start_span(
        "q",
        kind=SpanKind.CLIENT,
        attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.DB_QUERY_TEXT: text},
    )
    live.end()
    (exported,) = exporter.get_finished_spans()
    assert exported is not live
    assert exported.name == "SELECT orders"
    assert exported.attributes[attr.DB_QUERY_TEXT] == "SELECT * FROM orders WHERE id = ?"
    assert live.name == "q"
    assert live.attributes[attr.DB_QUERY_TEXT] == text
    assert attr.QUERY_FINGERPRINT not in live.attributes


def test_client_lane_contains_a_failing_hook(caplog):
    class Broken(SpanEnricher):
        name = "broken lane"

        def on_client_end(self, span, span_id, attributes):
            raise RuntimeError("broken")

        def on_end(self, draft):
            raise RuntimeError("broken")

    tracer, exporter = _pipeline(Broken(), QueryShapeEnricher(sanitize=True))
    with caplog.at_level(logging.WARNING, logger="otel_db"):
        _db_span(tracer, 10, **{attr.DB_QUERY_TEXT: "SELECT * FROM users WHERE id = 7"})
    (span,) = exporter.get_finished_spans()
    assert span.attributes[attr.DB_QUERY_TEXT] == "SELECT * FROM users WHERE id = ?"
    assert any("broken lane" in record.getMessage() for record in caplog.records)
