"""The interface every enrichment step implements."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span

from otel_db.pipeline.draft import SpanDraft


class SpanEnricher:
    """One small enrichment step, run by :class:`~otel_db.pipeline.stage.EnrichmentStage`.

    Subclasses override only the hooks they need; the stage skips hooks left as they
    are here, so an enricher that only looks at finished spans costs nothing at start.
    Hooks run on the thread that starts or ends the span: they must not block. An
    exception they raise is contained and logged by the stage.
    """

    #: Short name used in logs when this enricher fails.
    name: str = "enricher"

    def on_start(self, span: Span, parent_context: Context | None) -> None:
        """Called with the live span right after it started."""

    def on_end(self, draft: SpanDraft) -> None:
        """Called with the ended span's draft, before it is exported."""

    def shutdown(self) -> None:
        """Release whatever the enricher holds."""


def overrides(enricher: SpanEnricher, hook: str) -> bool:
    """Whether ``enricher`` replaces the base class's no-op ``hook``."""
    return getattr(type(enricher), hook) is not getattr(SpanEnricher, hook)
