from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_db import attributes as attr
from otel_db.enrichers.slow_query import SlowQueryRule
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
