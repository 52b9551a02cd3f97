from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_db import attributes as attr
from otel_db.enrichers.slow_query import SlowQueryRule
from otel_db.pipeline.deferred import DEFERRED, DeferredAttributes
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import SpanEnricher
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
