"""The span processor that runs the enrichers in front of the exporting processors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.pipeline.draft import SpanDraft, plain_attributes
from otel_db.pipeline.enricher import SpanEnricher, overrides

_CLIENT = SpanKind.CLIENT
_ERROR = StatusCode.ERROR

StartHook = tuple[Callable[[Span, "Context | None"], None], str]
EndHook = tuple[Callable[[SpanDraft], None], str, int]  # (on_end, name, min duration ns)
ClientHook = tuple[
    Callable[[ReadableSpan, int, "dict[str, AttributeValue]"], "str | None"], str, int
]
_CLIENT_UNTROUBLED = 2


def _sort(span: ReadableSpan) -> tuple[int, int, int]:
    """(span id, ``2 * client + troubled``, duration in ns) of an ended span that is not
    the SDK's own ``ReadableSpan`` (that one is read from its fields in ``on_end``).

    Troubled: an ERROR status or any event (an exception recorded without setting the
    status).
    """
    context, kind, status = span.context, span.kind, span.status
    start, end = span.start_time, span.end_time
    troubled = status.status_code is _ERROR or bool(span.events)
    duration = end - start if start is not None and end is not None else 0
    return context.span_id, (2 if kind is _CLIENT else 0) + troubled, duration


@dataclass(frozen=True)
class HookTable:
    """The enrichers' hooks, sorted once by the spans they concern.

    ``end[2 * client + troubled]``: the end hooks for a span of that sort, in the
    enrichers' order.
    """

    start_client: tuple[StartHook, ...]
    start_other: tuple[StartHook, ...]
    end: tuple[tuple[EndHook, ...], ...]
    #: The end hooks of untroubled client spans as ``on_client_end`` hooks, when every
    #: one of them has that lane (None otherwise: those spans get a draft too).
    client_lane: tuple[ClientHook, ...] | None

    @classmethod
    def of(cls, enrichers: Sequence[SpanEnricher]) -> HookTable:
        starts = [e for e in enrichers if overrides(e, "on_start")]
        ends = [e for e in enrichers if overrides(e, "on_end")]
        end_tables = []
        for client in (False, True):
            for troubled in (False, True):
                end_tables.append(
                    tuple(
                        (e.on_end, e.name, e.end_filter.min_duration_ns)
                        for e in ends
                        if (client or not e.end_filter.client_only)
                        and (troubled or not e.end_filter.troubled_only)
                    )
                )
        lane = [e for e in ends if not e.end_filter.troubled_only]
        return cls(
            start_client=tuple((e.on_start, e.name) for e in starts),
            start_other=tuple((e.on_start, e.name) for e in starts if not e.starts_client_only),
            end=tuple(end_tables),
            client_lane=(
                tuple((e.on_client_end, e.name, e.end_filter.min_duration_ns) for e in lane)
                if lane and all(overrides(e, "on_client_end") for e in lane)
                else None
            ),
        )


class EnrichmentStage(SpanProcessor):
    """Runs the enrichers a span concerns, then hands the (possibly rebuilt) span to
    ``downstream``.

    This is a wrapper, not a sibling processor: the SDK gives every processor the same
    frozen span, so the only way for end-of-span facts (duration, outcome) to reach the
    exporters is to build the span they receive.
    """

    def __init__(self, enrichers: Sequence[SpanEnricher], downstream: SpanProcessor) -> None:
        self.enrichers = tuple(enrichers)
        self.downstream = downstream
        self._hooks = HookTable.of(self.enrichers)
        self._stopped = False
        DEFERRED.consumer_started()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        hooks = self._hooks
        for on_start, name in hooks.start_client if span.kind is _CLIENT else hooks.start_other:
            try:
                on_start(span, parent_context)
            except Exception as error:
                FAILURES.report(f"enricher {name} (span start)", error)
        self.downstream.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        hooks = self._hooks
        try:
            if type(span) is ReadableSpan:
                # The SDK's own ended span, read from its fields: through the public
                # properties this costs more than most enrichers do. The SDK's
                # BoundedList answers len() in Python; its deque in C.
                fields = span.__dict__
                start, end = fields["_start_time"], fields["_end_time"]
                events = fields["_events"]
                sort = (2 if fields["_kind"] is _CLIENT else 0) + (
                    fields["_status"].status_code is _ERROR or bool(getattr(events, "_dq", events))
                )
                span_id = fields["_context"].span_id
                duration = end - start if start is not None and end is not None else 0
            else:
                span_id, sort, duration = _sort(span)
        except Exception as error:  # a span that cannot be sorted gets every hook
            FAILURES.report("sorting an ended span", error)
            context = getattr(span, "context", None)
            span_id, sort, duration = getattr(context, "span_id", 0), 3, 0
        deferred = DEFERRED.take(span_id)
        lane = hooks.client_lane
        if sort == _CLIENT_UNTROUBLED and lane is not None and type(span) is ReadableSpan:
            try:
                span = _client_lane(span, span_id, duration, deferred, lane)
            except Exception as error:
                FAILURES.report("rebuilding an enriched span", error)
            self.downstream.on_end(span)
            return
        chosen = hooks.end[sort]
        if chosen or deferred:
            draft = SpanDraft(span, span_id, _CLIENT if sort >= 2 else span.kind)
            if deferred:
                draft.set_attributes(deferred)
            for on_end, name, min_duration_ns in chosen:
                if duration < min_duration_ns:
                    continue
                try:
                    on_end(draft)
                except Exception as error:
                    FAILURES.report(f"enricher {name} (span end)", error)
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


def _client_lane(
    span: ReadableSpan,
    span_id: int,
    duration: int,
    deferred: dict[str, AttributeValue] | None,
    hooks: tuple[ClientHook, ...],
) -> ReadableSpan:
    """The SDK's ended client span, rebuilt with what ``hooks`` changed (no draft)."""
    fields = span.__dict__
    attributes = dict(plain_attributes(span))
    if deferred:
        attributes.update(deferred)
    name = None
    for on_client_end, hook_name, min_duration_ns in hooks:
        if duration < min_duration_ns:
            continue
        try:
            renamed = on_client_end(span, span_id, attributes)
        except Exception as error:
            FAILURES.report(f"enricher {hook_name} (span end)", error)
            continue
        if renamed is not None:
            name = renamed
    # Its event and link lists never change again: shared, as SpanDraft.build does.
    rebuilt = ReadableSpan.__new__(ReadableSpan)
    rebuilt_fields = rebuilt.__dict__
    rebuilt_fields.update(fields)
    rebuilt_fields["_attributes"] = attributes
    if name is not None:
        rebuilt_fields["_name"] = name
    return rebuilt
