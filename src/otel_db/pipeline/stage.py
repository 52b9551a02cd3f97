"""The span processor that runs the enrichers in front of the exporting processors."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.compat.verified import shortcut
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.db_span import SPAN_ID
from otel_db.pipeline.deferred import DEFERRED
from otel_db.pipeline.draft import SPAN_FIELDS, SpanDraft
from otel_db.pipeline.enricher import EndFilter, SpanEnricher, overrides
from otel_db.pipeline.transaction_holding import TransactionHoldingStage

_CLIENT = SpanKind.CLIENT
_ERROR = StatusCode.ERROR

StartHook = tuple[Callable[[Span, "Context | None"], None], str]
# (on_end, name, min duration ns, required attribute): see EndFilter.
EndHook = tuple[Callable[[SpanDraft], None], str, int, "str | None"]
ClientHook = tuple[
    Callable[[ReadableSpan, int, "dict[str, AttributeValue]"], "str | None"],
    str,
    int,
    "str | None",
]
_TRANSACTION_ID = attr.TRANSACTION_ID
_PENDING = DEFERRED.pending  # the deferred attributes by span id (DEFERRED.take, inlined)


def _sort(span: ReadableSpan, fields: bool = True) -> tuple[int, int, int]:
    """(span id, ``2 * client + troubled``, duration in ns) of an ended span.

    Troubled: an ERROR status or any event (an exception recorded without setting the
    status). The SDK's own ended span is read from its fields: through the public
    properties (``events`` copies the list) this costs more than most enrichers do.
    """
    if fields and type(span) is ReadableSpan:
        context, kind, status = span._context, span._kind, span._status
        # The SDK's BoundedList answers len() in Python; its deque in C.
        events = getattr(span._events, "_dq", span._events)
        start, end = span._start_time, span._end_time
    else:
        context, kind, status, events = span.context, span.kind, span.status, span.events
        start, end = span.start_time, span.end_time
    troubled = status.status_code is _ERROR or bool(events)
    duration = end - start if start is not None and end is not None else 0
    return context.span_id, (2 if kind is _CLIENT else 0) + troubled, duration


def _gates(end_filter: EndFilter) -> tuple[int, str | None]:
    return end_filter.min_duration_ns, end_filter.requires


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
                        (e.on_end, e.name, *_gates(e.end_filter))
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
                tuple((e.on_client_end, e.name, *_gates(e.end_filter)) for e in lane)
                if lane and all(overrides(e, "on_client_end") for e in lane)
                else None
            ),
        )


class EnrichmentStage(SpanProcessor):
    """Runs the enrichers a span concerns, then hands the (possibly rebuilt) span to
    ``downstream``.

    This is a wrapper, not a sibling processor: the SDK gives every processor the same
    frozen span, so the only way for end-of-span facts (duration, outcome) to reach the
    exporters is to change the span they receive: the client lane writes into the
    ``ReadableSpan`` the SDK made for its processors, other spans are rebuilt from a
    draft when an enricher changed something.

    When ``downstream`` is the transaction holding stage, only spans that carry a
    transaction id go through it; every other span (and every span start) goes straight
    to the processor behind it, which is where the holding stage would pass it.
    """

    def __init__(self, enrichers: Sequence[SpanEnricher], downstream: SpanProcessor) -> None:
        self.enrichers = tuple(enrichers)
        self.downstream = downstream
        self._holding = downstream if isinstance(downstream, TransactionHoldingStage) else None
        self._hooks = HookTable.of(self.enrichers)
        # The client lane and the field reads use the SDK's private span fields: only on
        # a verified SDK (elsewhere every span is enriched through a public draft).
        self._fields = shortcut(SPAN_FIELDS)
        if not self._fields:
            self._hooks = replace(self._hooks, client_lane=None)
        self._stopped = False
        DEFERRED.consumer_started()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        hooks = self._hooks
        try:
            # The SDK's Span: its field, not the property.
            client = (span._kind if self._fields else span.kind) is _CLIENT
        except AttributeError:
            client = span.kind is _CLIENT
        for on_start, name in hooks.start_client if client else hooks.start_other:
            try:
                on_start(span, parent_context)
            except Exception as error:
                FAILURES.report(f"enricher {name} (span start)", error)
        # Where a span that waits for no transaction goes (the holding stage's
        # downstream is read each time: it is the holding stage's to change).
        holding = self._holding
        (self.downstream if holding is None else holding.downstream).on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        lane = self._hooks.client_lane
        try:
            # The client lane: the SDK's own ended client span, without failure or
            # events, when every hook for such spans has an ``on_client_end``. It is
            # read from its fields (through the public properties this costs more than
            # most enrichers do; the SDK's BoundedList answers len() in Python, its
            # deque in C) and enriched in place: this ``ReadableSpan`` is the one the
            # SDK made for its processors as the span ended, not the application's
            # span, whose own attributes and name stay as they were.
            if (
                lane is None
                or type(span) is not ReadableSpan
                or span._kind is not _CLIENT
                or span._status.status_code is _ERROR
                or getattr(span._events, "_dq", span._events)
            ):
                receiver = None
            else:
                span_id = span._context[SPAN_ID]
                stored = span._attributes
                # A new dict: the stored one is shared with the application's span.
                attributes = dict(
                    stored._dict if type(stored) is BoundedAttributes else (stored or {})
                )
                pending = _PENDING
                if pending:
                    deferred = pending.pop(span_id, None)
                    if deferred:
                        attributes.update(deferred)
                duration = span._end_time - span._start_time  # type: ignore[operator]
                name = None
                for on_client_end, hook_name, min_duration_ns, required in lane:
                    # (Most hooks have neither gate: two falsy tests, then the call.)
                    if (min_duration_ns and duration < min_duration_ns) or (
                        required and required not in attributes
                    ):
                        continue
                    try:
                        renamed = on_client_end(span, span_id, attributes)
                    except Exception as error:
                        FAILURES.report(f"enricher {hook_name} (span end)", error)
                        continue
                    if renamed is not None:
                        name = renamed
                span._attributes = attributes
                if name is not None:
                    span._name = name
                holding = self._holding
                # Only a span with a transaction id can wait for an outcome (the
                # holding stage decides whether it does).
                receiver = (
                    self.downstream
                    if holding is None
                    else holding
                    if _TRANSACTION_ID in attributes
                    else holding.downstream
                )
        except Exception as error:
            FAILURES.report("enriching a client span", error)
            receiver = self.downstream
        if receiver is None:
            self._end_with_draft(span)
        else:
            receiver.on_end(span)

    def _end_with_draft(self, span: ReadableSpan) -> None:
        """Any other ended span: the enrichers its sort concerns, through a draft."""
        hooks = self._hooks
        try:
            span_id, sort, duration = _sort(span, self._fields)
        except Exception as error:  # a span that cannot be sorted gets every hook
            FAILURES.report("sorting an ended span", error)
            context = getattr(span, "context", None)
            span_id, sort, duration = getattr(context, "span_id", 0), 3, 0
        deferred = DEFERRED.take(span_id)
        chosen = hooks.end[sort]
        if chosen or deferred:
            draft = SpanDraft(span, span_id, _CLIENT if sort >= 2 else span.kind, self._fields)
            if deferred:
                draft.set_attributes(deferred)
            for on_end, name, min_duration_ns, required in chosen:
                if duration < min_duration_ns or (required and required not in draft.attributes):
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
        holding = self._holding
        (self.downstream if holding is None else holding.downstream)._on_ending(span)
