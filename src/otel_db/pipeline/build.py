"""Assembles the enrichers and the exporting processors from settings."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_db.enrichers.slow_query import SlowQueryRule
from otel_db.pipeline.enricher import SpanEnricher
from otel_db.pipeline.stage import EnrichmentStage
from otel_db.settings import Settings

_logger = logging.getLogger(__name__)

# The SDK's documented BatchSpanProcessor defaults, used when the OTEL_BSP_* values
# in the environment are rejected by the SDK.
_BSP_DEFAULTS = {
    "max_queue_size": 2048,
    "schedule_delay_millis": 5000,
    "max_export_batch_size": 512,
    "export_timeout_millis": 30000,
}


def build_enrichers(settings: Settings) -> list[SpanEnricher]:
    """The enrichment steps, in the order they run on each span."""
    return [SlowQueryRule(settings.slow_query_threshold_ms)]


def batch_processor(exporter: SpanExporter) -> SpanProcessor:
    """A BatchSpanProcessor from the OTEL_BSP_* settings, or the defaults if they are invalid."""
    try:
        return BatchSpanProcessor(exporter)
    except ValueError as error:
        _logger.warning(
            "otel_db: the OTEL_BSP_* settings were rejected (%s); using the defaults %s",
            error,
            _BSP_DEFAULTS,
        )
        return BatchSpanProcessor(exporter, **_BSP_DEFAULTS)


def processing_chain(settings: Settings, downstream: SpanProcessor) -> SpanProcessor:
    """Every otel_db stage, in order, in front of ``downstream``."""
    return EnrichmentStage(build_enrichers(settings), downstream)


def export_pipeline(settings: Settings, exporter: SpanExporter) -> SpanProcessor:
    """The otel_db stages in front of a batch processor for ``exporter``."""
    return processing_chain(settings, batch_processor(exporter))
