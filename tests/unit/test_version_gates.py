"""The exact-version gates: verdicts, the one warning line, and each public path giving
what the shortcut gives."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_db import attributes as attr
from otel_db.compat import verified
from otel_db.enrichers.n_plus_one import NPlusOneDetector
from otel_db.enrichers.query_shape import QueryShapeEnricher
from otel_db.enrichers.slow_query import SlowQueryRule
from otel_db.pipeline.stage import EnrichmentStage
from otel_db.pipeline.transaction_holding import TransactionHoldingStage
from otel_db.transactions.tracker import TransactionTracker


@pytest.fixture
def versions(monkeypatch) -> Iterator[dict[str, str | None]]:
    """The installed versions as otel_db sees them, editable; read afresh after."""
    installed = {name: sorted(allowed)[-1] for name, allowed in verified.VERIFIED.items()}
    verified.reset()
    monkeypatch.setattr(verified, "_installed", installed)
    with verified.forced(None):
        yield installed
    verified.reset()


def test_verified_versions_open_every_gate_without_a_warning(versions, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_db"):
        assert all(verified.shortcut(name) for name in verified.SHORTCUTS)
    assert caplog.records == []


def test_an_unverified_sdk_shuts_its_gates_only_and_warns_once(versions, caplog):
    versions["opentelemetry-sdk"] = "1.46.0"
    versions["opentelemetry-api"] = "1.46.0"
    with caplog.at_level(logging.WARNING, logger="otel_db"):
        assert not verified.shortcut("sdk.metrics.aggregations")
        assert not verified.shortcut("sdk.trace.span_fields")
        assert verified.shortcut("contrib.semconv")
        verified.warn_once()
    (record,) = caplog.records
    message = record.getMessage()
    assert "opentelemetry-api 1.46.0, opentelemetry-sdk 1.46.0" in message
    assert "public" in message and "\n" not in message


def test_an_unverified_contrib_release_shuts_the_contrib_gates(versions):
    versions["opentelemetry-instrumentation"] = "0.67b0"
    assert not verified.shortcut("contrib.semconv")
    assert not verified.shortcut("contrib.dbapi")
    assert not verified.shortcut("contrib.launcher.execl")
    assert verified.shortcut("sdk.metrics.aggregations")


def test_a_missing_optional_distribution_is_not_unverified(versions):
    versions["opentelemetry-exporter-otlp-proto-http"] = None
    assert verified.unverified() == {}


# -- public paths -------------------------------------------------------------------


@pytest.mark.parametrize("opt_in", ["", "database", "database/dup", "http,database"])
def test_the_public_semconv_writer_writes_what_contribs_helpers_write(monkeypatch, opt_in):
    from opentelemetry.instrumentation import _semconv

    from otel_db.instrumentation.semconv import DatabaseAttributeWriter

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    stability = _semconv._OpenTelemetrySemanticConventionStability
    monkeypatch.setattr(stability, "_initialized", False)
    monkeypatch.setattr(stability, "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING", {})
    written = []
    for use_contrib in (True, False):
        writer = DatabaseAttributeWriter(use_contrib=use_contrib)
        out: dict = {}
        writer.system(out, "postgresql")
        writer.namespace(out, "shop")
        writer.statement(out, "SELECT 1")
        writer.operation(out, "SELECT")
        writer.server(out, "db.local", 5432)
        written.append((out, writer.schema_url, writer.reports_stable))
    assert written[0] == written[1]


def _run_pipeline(shortcuts: bool) -> list[tuple]:
    with verified.forced(shortcuts):
        exporter = InMemorySpanExporter()
        tracker = TransactionTracker()
        holding = TransactionHoldingStage(SimpleSpanProcessor(exporter), tracker)
        stage = EnrichmentStage(
            [QueryShapeEnricher(), SlowQueryRule(50), NPlusOneDetector(3)], holding
        )
        assert stage._fields is shortcuts and holding._fields is shortcuts
        provider = TracerProvider()
        provider.add_span_processor(stage)
        tracer = provider.get_tracer("gates")
        with tracer.start_as_current_span("GET /orders"):
            for i in range(5):
                span = tracer.start_span(
                    "SELECT",
                    kind=SpanKind.CLIENT,
                    start_time=1_000,
                    attributes={
                        attr.DB_SYSTEM_NAME: "postgresql",
                        attr.DB_QUERY_TEXT: f"SELECT * FROM items WHERE id = {i}",
                    },
                )
                if i == 4:
                    span.set_status(Status(StatusCode.ERROR))
                span.end(end_time=1_000 + (i + 1) * 20_000_000)
        provider.shutdown()
    return [
        (s.name, s.kind, s.status.status_code, sorted(s.attributes.items()), len(s.events))
        for s in exporter.get_finished_spans()
    ]


def test_the_pipeline_exports_the_same_spans_on_the_public_path():
    with_shortcuts = _run_pipeline(True)
    assert any(attr.N_PLUS_ONE in dict(span[3]) for span in with_shortcuts)
    assert _run_pipeline(False) == with_shortcuts


def test_span_drafts_and_outcomes_on_the_public_path():
    from opentelemetry.sdk.trace import ReadableSpan

    from otel_db.pipeline.draft import SpanDraft
    from otel_db.pipeline.transaction_holding import with_outcome

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("gates").start_span("x", attributes={"a": 1})
    span.add_event("e")
    span.end()
    (ended,) = exporter.get_finished_spans()
    draft = SpanDraft(ended, fields=False)
    draft.set_attribute("b", 2)
    draft.rename("y")
    built = draft.build()
    assert type(built) is ReadableSpan and built.name == "y"
    assert dict(built.attributes) == {"a": 1, "b": 2} and len(built.events) == 1
    done = with_outcome(built, attr.OUTCOME_COMMITTED, fields=False)
    assert done.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert attr.TRANSACTION_OUTCOME not in built.attributes
    provider.shutdown()


def test_the_grpc_exporter_keeps_the_sdks_encoding_on_the_public_path():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    from otel_db.export.otlp_encoding import use_for

    exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:4317", insecure=True)
    try:
        with verified.forced(False):
            use_for(exporter)
        assert "_translate_data" not in vars(exporter)
        with verified.forced(True):
            use_for(exporter)
        assert "_translate_data" in vars(exporter)
    finally:
        exporter.shutdown()


def test_contrib_histograms_are_left_alone_on_the_public_path():
    from otel_db.metrics.interned_histogram import intern_contrib_histograms

    class Integration:
        def __init__(self) -> None:
            self._duration_histogram = self._returned_rows_histogram = _Histogram()

    class _Histogram:
        def record(self, amount, attributes=None, context=None) -> None:
            pass

    integration = Integration()
    with verified.forced(False):
        intern_contrib_histograms(integration)
    assert type(integration._duration_histogram) is _Histogram
    with verified.forced(True):
        intern_contrib_histograms(integration)
    assert type(integration._duration_histogram) is not _Histogram


def test_the_configurator_hook_is_looked_up_on_the_public_path(caplog):
    from otel_db.configurator import _accepts_export_span_processor

    with verified.forced(False), caplog.at_level(logging.WARNING, logger="otel_db"):
        assert _accepts_export_span_processor()  # this SDK's signature has it
    assert caplog.records == []
