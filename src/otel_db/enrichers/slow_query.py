"""Flags database statements whose duration reaches the configured threshold."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.pipeline.db_span import is_db_client_span
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import EndFilter, SpanEnricher

# The tracer of the ``connect`` spans (otel_db.instrumentation.connect_spans).
_CONNECT_SPANS = "otel_db.instrumentation.connect_spans"


class SlowQueryRule(SpanEnricher):
    """Adds ``otel_db.query.slow`` and the threshold in force to slow statement spans."""

    name = "slow-query"

    def __init__(self, threshold_ms: float) -> None:
        self.threshold_ms = float(threshold_ms)
        self._threshold_ns = int(threshold_ms * 1_000_000)
        self._flag = {attr.QUERY_SLOW: True, attr.QUERY_SLOW_THRESHOLD_MS: self.threshold_ms}
        self.end_filter = EndFilter(client_only=True, min_duration_ns=max(0, self._threshold_ns))

    def on_end(self, draft: SpanDraft) -> None:
        if self._is_slow_statement(draft.span, draft.kind, draft.attributes):
            draft.set_attributes(self._flag)

    def on_client_end(
        self, span: ReadableSpan, span_id: int, attributes: dict[str, AttributeValue]
    ) -> str | None:
        if self._is_slow_statement(span, SpanKind.CLIENT, attributes):
            attributes.update(self._flag)
        return None

    def _is_slow_statement(
        self, span: ReadableSpan, kind: SpanKind, attributes: Mapping[str, AttributeValue]
    ) -> bool:
        end, start = span.end_time, span.start_time
        if end is None or start is None or end - start < self._threshold_ns:
            return False
        scope = span.instrumentation_scope
        if scope is not None and scope.name == _CONNECT_SPANS:
            return False  # a failed connection attempt is no slow query
        return is_db_client_span(kind, attributes)
