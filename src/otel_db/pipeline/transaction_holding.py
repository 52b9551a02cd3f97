"""Holds the statement spans of open transactions until their outcome is known.

A statement's ``otel_db.transaction.outcome`` (did its effects persist?) is only known
at COMMIT / ROLLBACK, after the statement span ended. This stage sits between the
enrichment stage and the exporting processor: a span carrying ``otel_db.transaction.id``
but no outcome waits here until the :class:`~otel_db.transactions.tracker.TransactionTracker`
reports how its transaction ended, then leaves with the outcome set.

Holding is bounded three ways, and a span never disappears: beyond the cap per
transaction it leaves at once, beyond the total cap the oldest transaction's spans
leave, and spans held longer than the age limit leave; all of those with ``unknown``
(counted in :attr:`TransactionHoldingStage.released_unknown`). ``force_flush`` and
``shutdown`` release everything still held, with ``unknown``.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_db import attributes as attr
from otel_db.compat.verified import shortcut
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.draft import SPAN_FIELDS, SpanDraft, plain_attributes
from otel_db.transactions.tracker import OutcomeOf, TransactionTracker, default_tracker

DEFAULT_MAX_PER_TRANSACTION = 1_000
DEFAULT_MAX_TOTAL = 20_000
DEFAULT_MAX_AGE_SECONDS = 60.0


class _Held:
    __slots__ = ("since", "spans")

    def __init__(self, since: float) -> None:
        self.since = since
        self.spans: list[ReadableSpan] = []


#: ``sys.getrefcount`` of a dict referenced only by one span's ``_attributes`` while
#: :func:`with_outcome` looks at it: the span, the local name, the call's argument.
_ONLY_THE_SPAN = 3
_refcount = getattr(sys, "getrefcount", None)


def with_outcome(span: ReadableSpan, outcome: str, fields: bool = True) -> ReadableSpan:
    """``span`` with ``otel_db.transaction.outcome`` set, rebuilt as cheaply as is safe.

    A span the enrichment stage rebuilt is a plain ``ReadableSpan`` over a plain dict.
    When that dict is referenced by nothing but the span (a held span: the stage's
    draft is gone and nothing downstream has seen it yet), the outcome is written into
    it, with no copy at all. Otherwise a shallow copy of the span gets a copy of the
    dict; any other span (the SDK's own, with its locked attributes) goes through a
    ``SpanDraft``, and so does every span when ``fields`` is false (an SDK version
    whose private span fields are not verified).
    """
    if not fields:
        draft = SpanDraft(span, fields=False)
        draft.set_attribute(attr.TRANSACTION_OUTCOME, outcome)
        return draft.build()
    attributes = getattr(span, "_attributes", None)
    if type(span) is ReadableSpan and type(attributes) is dict:
        if _refcount is not None and _refcount(attributes) <= _ONLY_THE_SPAN:
            attributes[attr.TRANSACTION_OUTCOME] = outcome
            return span
        copy = ReadableSpan.__new__(ReadableSpan)
        copy.__dict__.update(span.__dict__)
        copy._attributes = {**attributes, attr.TRANSACTION_OUTCOME: outcome}
        return copy
    draft = SpanDraft(span)
    draft.set_attribute(attr.TRANSACTION_OUTCOME, outcome)
    return draft.build()


class TransactionHoldingStage(SpanProcessor):
    """Wraps ``downstream``; delays statement spans of open transactions."""

    def __init__(
        self,
        downstream: SpanProcessor,
        tracker: TransactionTracker | None = None,
        *,
        max_per_transaction: int = DEFAULT_MAX_PER_TRANSACTION,
        max_total: int = DEFAULT_MAX_TOTAL,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        self.downstream = downstream
        self.tracker = tracker or default_tracker()
        self.max_per_transaction = max_per_transaction
        self.max_total = max_total
        self.max_age_seconds = max_age_seconds
        self._fields = shortcut(SPAN_FIELDS)
        self._lock = threading.Lock()
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._total = 0
        self.released_unknown = 0
        self._closed = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.tracker.add_listener(self)

    @property
    def held_count(self) -> int:
        return self._total

    # -- SpanProcessor --------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.downstream.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        self.downstream._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            ready = self._accept(span)
        except Exception as error:
            FAILURES.report("transaction holding", error)
            ready = [span]
        for finished in ready:
            self.downstream.on_end(finished)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self._release_all()
        return self.downstream.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._closed.set()
        self.tracker.remove_listener(self)
        self._release_all()
        self.downstream.shutdown()

    # -- tracker callback -----------------------------------------------------------

    def transaction_resolved(self, transaction_id: str, outcome_of: OutcomeOf) -> None:
        with self._lock:
            held = self._held.pop(transaction_id, None)
            if held is None:
                return
            self._total -= len(held.spans)
        for span in held.spans:
            self._emit(span, _outcome(outcome_of, span))

    # -- internals ------------------------------------------------------------------

    def _accept(self, span: ReadableSpan) -> Sequence[ReadableSpan]:
        # A span the stage rebuilt: a dict.
        attributes = getattr(span, "_attributes", None) if self._fields else None
        if type(attributes) is not dict:
            # (The public property builds a proxy per read.)
            attributes = plain_attributes(span, self._fields)
        transaction_id = attributes.get(attr.TRANSACTION_ID)
        if transaction_id is None or attr.TRANSACTION_OUTCOME in attributes:
            return (span,)  # not in a transaction, or a transaction/savepoint span itself
        if type(transaction_id) is not str:
            transaction_id = str(transaction_id)
        now = time.monotonic()
        overflow: list[ReadableSpan] = []
        with self._lock:
            outcome_of = self.tracker.resolution(transaction_id)
            if outcome_of is None:
                held = self._held.get(transaction_id)
                if held is None:
                    held = self._held[transaction_id] = _Held(now)
                    if self._sweeper is None:
                        self._start_sweeper()
                if len(held.spans) < self.max_per_transaction:
                    held.spans.append(span)
                    self._total += 1
                else:
                    overflow.append(span)
                overflow.extend(self._evict(now))
        if outcome_of is not None:
            return [with_outcome(span, _outcome(outcome_of, span), self._fields)]
        self.released_unknown += len(overflow)
        return [with_outcome(s, attr.OUTCOME_UNKNOWN, self._fields) for s in overflow]

    def _evict(self, now: float) -> list[ReadableSpan]:
        """Spans over the total cap or the age limit, oldest transaction first (locked)."""
        out: list[ReadableSpan] = []
        while self._held:
            transaction_id, held = next(iter(self._held.items()))
            if self._total <= self.max_total and now - held.since < self.max_age_seconds:
                break
            del self._held[transaction_id]
            self._total -= len(held.spans)
            out.extend(held.spans)
        return out

    def _start_sweeper(self) -> None:
        """A daemon thread that applies the age limit when no new span arrives (locked)."""
        self._sweeper = threading.Thread(
            target=self._sweep_until_closed, name="otel_db transaction holding", daemon=True
        )
        self._sweeper.start()

    def _sweep_until_closed(self) -> None:
        interval = max(0.05, min(self.max_age_seconds / 4, 5.0))
        while not self._closed.wait(interval):
            try:
                self.sweep()
            except Exception as error:
                FAILURES.report("transaction holding age limit", error)

    def sweep(self) -> None:
        """Release, with ``unknown``, the spans held longer than the age limit."""
        with self._lock:
            expired = self._evict(time.monotonic())
        self.released_unknown += len(expired)
        for span in expired:
            self._emit(span, attr.OUTCOME_UNKNOWN)

    def _release_all(self) -> None:
        with self._lock:
            leftovers = [span for held in self._held.values() for span in held.spans]
            self._held.clear()
            self._total = 0
        self.released_unknown += len(leftovers)
        for span in leftovers:
            self._emit(span, attr.OUTCOME_UNKNOWN)

    def _emit(self, span: ReadableSpan, outcome: str) -> None:
        try:
            self.downstream.on_end(with_outcome(span, outcome, self._fields))
        except Exception as error:
            FAILURES.report("releasing a held span", error)


def _outcome(outcome_of: OutcomeOf, span: ReadableSpan) -> str:
    context = span.context
    return outcome_of(context.span_id) if context is not None else attr.OUTCOME_UNKNOWN
