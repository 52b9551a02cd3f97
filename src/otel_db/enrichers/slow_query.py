"""Flags database statements whose duration reaches the configured threshold."""

from __future__ import annotations

from otel_db import attributes as attr
from otel_db.pipeline.db_span import is_db_client_span
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import SpanEnricher


class SlowQueryRule(SpanEnricher):
    """Adds ``otel_db.query.slow`` and the threshold in force to slow statement spans."""

    name = "slow-query"

    def __init__(self, threshold_ms: float) -> None:
        self.threshold_ms = float(threshold_ms)
        self._threshold_ns = int(threshold_ms * 1_000_000)

    def on_end(self, draft: SpanDraft) -> None:
        span = draft.span
        if span.end_time is None or span.start_time is None:
            return
        if span.end_time - span.start_time < self._threshold_ns:
            return
        if not is_db_client_span(span.kind, draft.attributes):
            return
        draft.set_attributes(
            {attr.QUERY_SLOW: True, attr.QUERY_SLOW_THRESHOLD_MS: self.threshold_ms}
        )
