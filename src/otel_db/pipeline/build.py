"""Assembles the enrichers and the exporting processors from settings."""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_db.enrichers.db_errors import DatabaseErrorEnricher
from otel_db.enrichers.n_plus_one import NPlusOneDetector
from otel_db.enrichers.query_sanitizer import ErrorMessageScrubber
from otel_db.enrichers.query_shape import QueryShapeEnricher
from otel_db.enrichers.slow_query import SlowQueryRule
from otel_db.export import ResilientBatchProcessor, install_exit_handling, otlp_encoding
from otel_db.export.resilient import DEFAULT_CAPACITY
from otel_db.instrumentation.parameter_capture import ContribParameterEnricher
from otel_db.pipeline.enricher import SpanEnricher
from otel_db.pipeline.stage import EnrichmentStage
from otel_db.settings import Settings
from otel_db.transactions.wiring import driver_enrichers, holding_stage

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
    return [
        # First: later steps see sanitized text (or none, when it is not captured).
        QueryShapeEnricher(settings.sanitize_queries, settings.capture_query_text),
        ContribParameterEnricher(settings.capture_parameters),  # contrib's parameter string
        DatabaseErrorEnricher(),  # classifies from the raw message, before it is scrubbed
        *(
            [ErrorMessageScrubber(settings.capture_query_text)]
            if settings.sanitize_queries or not settings.capture_query_text
            else []
        ),
        NPlusOneDetector(settings.n_plus_one_threshold),
        SlowQueryRule(settings.slow_query_threshold_ms),
    ]


def batch_processor(exporter: SpanExporter, settings: Settings | None = None) -> SpanProcessor:
    """The exporting processor for ``exporter``: batches, retries, bounded at exit.

    OTEL_BSP_* keep their meaning (env_hygiene has already repaired bad values); the
    queue defaults to 8192 spans instead of the SDK's 2048 because it is also the buffer
    that rides out a collector outage (about 40 s at 200 statements/s).
    """
    settings = settings or Settings()
    try:
        queue = _bsp_int("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_CAPACITY)
        processor = ResilientBatchProcessor(
            exporter,
            capacity=queue,
            batch_size=min(queue, _bsp_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)),
            schedule_delay_s=_bsp_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000,
            shutdown_timeout_s=settings.shutdown_timeout_ms / 1000,
        )
        install_exit_handling(settings.shutdown_timeout_ms / 1000)
        return processor
    except Exception as error:  # never leave the app without an exporting processor
        _logger.warning(
            "otel_db: the resilient export processor could not start (%s); using the SDK's "
            "BatchSpanProcessor with %s",
            error,
            _BSP_DEFAULTS,
        )
        return BatchSpanProcessor(exporter, **_BSP_DEFAULTS)


def _bsp_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


def processing_chain(settings: Settings, downstream: SpanProcessor) -> SpanProcessor:
    """Every otel_db stage, in order, in front of ``downstream``."""
    return EnrichmentStage(
        [*driver_enrichers(settings), *build_enrichers(settings)],
        holding_stage(settings, downstream),  # statement spans wait for their transaction
    )


def export_pipeline(settings: Settings, exporter: SpanExporter) -> SpanProcessor:
    """The otel_db stages in front of a batch processor for ``exporter``."""
    return processing_chain(settings, batch_processor(otlp_encoding.use_for(exporter), settings))
