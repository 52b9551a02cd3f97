"""Assembles the enrichers and the exporting processors from settings."""

from __future__ import annotations

import logging
import os

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
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
from otel_db.pipeline.transaction_holding import TransactionHoldingStage
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
    queue defaults to 32768 spans instead of the SDK's 2048 because it is also the buffer
    that rides out a collector outage (about 80 s of 200 statements/s at two spans per
    statement: a statement and its transaction; see docs/reliability.md).
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


class NoExport(SpanProcessor):
    """The end of a pipeline with no exporter (``OTEL_TRACES_EXPORTER=none``): the
    enrichment stage still runs (N+1 detection, query counts, the pytest fixtures)."""


class ExportFanOut(SpanProcessor):
    """Several exporting processors behind the one otel_db pipeline of a provider."""

    def __init__(self, processors: list[SpanProcessor]) -> None:
        self.processors = tuple(processors)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            processor.on_end(span)

    def _on_ending(self, span: Span) -> None:
        for processor in self.processors:
            processor._on_ending(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([processor.force_flush(timeout_millis) for processor in self.processors])


class ProviderPipeline:
    """One otel_db pipeline per tracer provider, whatever exporters the SDK configures.

    The SDK calls :meth:`for_exporter` once per configured trace exporter (none for
    ``OTEL_TRACES_EXPORTER=none``, two for ``console,otlp``). The enrichment stage (and
    with it N+1 detection, ``otel_db.query.count`` and what the pytest fixtures read)
    must run exactly once per span whatever that number is: once, because the deferred
    attributes are taken by the first stage that sees a span. So the first exporter gets
    the stage in front of its batch processor, later ones join it behind the same stage
    (the SDK's slot for them gets a processor that does nothing), and with no exporter
    :meth:`complete` adds the stage in front of :class:`NoExport`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.exporting: list[SpanProcessor] = []
        self.stage: EnrichmentStage | None = None

    def for_exporter(self, exporter: SpanExporter) -> SpanProcessor:
        """The SDK's ``export_span_processor``: what it adds to the provider."""
        processor = batch_processor(otlp_encoding.use_for(exporter), self.settings)
        self.exporting.append(processor)
        if self.stage is None:
            self.stage = processing_chain(self.settings, processor)
            return self.stage
        fan_out = ExportFanOut(self.exporting)
        target = self.stage.downstream
        if isinstance(target, TransactionHoldingStage):
            target.downstream = fan_out  # the stage reads it there on every span
        else:
            self.stage.downstream = fan_out
        return SpanProcessor()  # this exporter is fed by the stage already

    def complete(self, provider: object) -> None:
        """After the SDK's set-up: the stage, if no exporter brought it in."""
        if self.stage is None and isinstance(provider, TracerProvider):
            self.stage = processing_chain(self.settings, NoExport())
            provider.add_span_processor(self.stage)
