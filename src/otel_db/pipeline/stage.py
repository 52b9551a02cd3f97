"""The span processor that runs the enrichers in front of the exporting processors."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import SpanEnricher, overrides


class EnrichmentStage(SpanProcessor):
    """Runs every enricher, then hands the (possibly rebuilt) span to ``downstream``.

    This is a wrapper, not a sibling processor: the SDK gives every processor the same
    frozen span, so the only way for end-of-span facts (duration, outcome) to reach the
    exporters is to build the span they receive.
    """

    def __init__(self, enrichers: Sequence[SpanEnricher], downstream: SpanProcessor) -> None:
        self.enrichers = tuple(enrichers)
        self.downstream = downstream
        self._start_hooks = tuple(e for e in self.enrichers if overrides(e, "on_start"))
        self._end_hooks = tuple(e for e in self.enrichers if overrides(e, "on_end"))
        self._stopped = False
        DEFERRED.consumer_started()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for enricher in self._start_hooks:
            try:
                enricher.on_start(span, parent_context)
            except Exception as error:
                FAILURES.report(f"enricher {enricher.name} (span start)", error)
        self.downstream.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        deferred = DEFERRED.take(span.context.span_id)
        if self._end_hooks or deferred:
            draft = SpanDraft(span)
            if deferred:
                draft.set_attributes(deferred)
            for enricher in self._end_hooks:
                try:
                    enricher.on_end(draft)
                except Exception as error:
                    FAILURES.report(f"enricher {enricher.name} (span end)", error)
            try:
                span = draft.build()
            except Exception as error:
                FAILURES.report("rebuilding an enriched span", error)
        self.downstream.on_end(span)

    def shutdown(self) -> None:
        if not self._stopped:
            self._stopped = True
            DEFERRED.consumer_stopped()
        for enricher in self.enrichers:
            try:
                enricher.shutdown()
            except Exception as error:
                FAILURES.report(f"enricher {enricher.name} (shutdown)", error)
        self.downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.downstream.force_flush(timeout_millis)

    def _on_ending(self, span: Span) -> None:
        self.downstream._on_ending(span)
