"""The interface every enrichment step implements."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.util.types import AttributeValue

from otel_db.pipeline.draft import SpanDraft


@dataclass(frozen=True)
class EndFilter:
    """Which ended spans an enricher's ``on_end`` concerns.

    The stage sorts each ended span once (its kind, whether it failed or has events,
    its duration) and calls only the enrichers it concerns: with a dozen steps, asking
    each one costs more per span than what most of them do.
    """

    #: Only CLIENT spans (database statements, transactions, connects).
    client_only: bool = False
    #: Only spans with an ERROR status or with events (exceptions).
    troubled_only: bool = False
    #: Only spans that lasted at least this long (0: any).
    min_duration_ns: int = 0
    #: Only spans that carry this attribute (None: any).
    requires: str | None = None


EVERY_SPAN = EndFilter()


class SpanEnricher:
    """One small enrichment step, run by :class:`~otel_db.pipeline.stage.EnrichmentStage`.

    Subclasses override only the hooks they need; the stage skips hooks left as they
    are here, so an enricher that only looks at finished spans costs nothing at start.
    Hooks run on the thread that starts or ends the span: they must not block. An
    exception they raise is contained and logged by the stage.

    ``end_filter`` and ``starts_client_only`` narrow the spans the stage calls the hooks
    for; the hooks must still be correct for any span (they are also called directly).
    """

    #: Short name used in logs when this enricher fails.
    name: str = "enricher"

    #: The ended spans ``on_end`` is called for.
    end_filter: EndFilter = EVERY_SPAN

    #: Whether ``on_start`` is called for CLIENT spans only.
    starts_client_only: bool = False

    def on_start(self, span: Span, parent_context: Context | None) -> None:
        """Called with the live span right after it started."""

    def on_end(self, draft: SpanDraft) -> None:
        """Called with the ended span's draft, before it is exported."""

    def on_client_end(
        self, span: ReadableSpan, span_id: int, attributes: dict[str, AttributeValue]
    ) -> str | None:
        """The client-span lane: ``on_end`` for an ended CLIENT span without failure or
        events, whose only possible changes are to its attributes and name.

        ``attributes`` is the new span's own copy, to change in place; the return value
        is the span's new name, or None. An enricher that changes only attributes and
        names implements this too; the stage then makes no draft for the commonest
        span, a database statement that succeeded.
        """
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release whatever the enricher holds."""


def overrides(enricher: SpanEnricher, hook: str) -> bool:
    """Whether ``enricher`` replaces the base class's no-op ``hook``."""
    return getattr(type(enricher), hook) is not getattr(SpanEnricher, hook)
