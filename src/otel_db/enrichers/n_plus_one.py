"""N+1 detection: the same statement fingerprint, over and over, under one parent.

The parent is the nearest enclosing span that is neither a database statement nor a
transaction span (the request, job or function span of the application). Each client
span's application ancestor is resolved when the span starts, while the parent chain is
still live, so a statement inside a transaction span counts for the application span
above it; once an application span has counts, its later direct statements need nothing
at start and are counted through their parent's id. Counting happens when a statement
ends, after :class:`QueryShapeEnricher` gave it a fingerprint and sanitized text.

The counts are kept here and written on the parent once, when the parent itself ends and
passes through the same enrichment stage (one draft write, instead of a write on the
live parent per statement: the SDK's lock and validation cost ~1.5 us each time).
Statement spans are marked ``otel_db.n_plus_one`` from the one that reaches the threshold
onward; the earlier ones have already been handed to the exporters and are not held back
for this (holding every statement until its parent ends would delay and buffer all
database spans). The parent's ``otel_db.n_plus_one.count`` gives the full count.
:func:`publish_counts` writes the counts on a still-open parent for readers that need
them before it ends (``otel_db.testing.QueryCapture``).

Statements a library issues on its own (pool pre-pings, dialect start-up; see
``instrumentation/library_statements.py``) are marked ``otel_db.query.library_issued``
as they start and are neither counted nor flagged.

Memory: one entry per started, unfinished client span whose ancestor had to be
resolved (a parent's first statement, statements in transactions) and one per parent
that issued statements, both capped (oldest dropped first) for spans that never end, and
dropped when the span ends.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Mapping
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.compat.verified import shortcut
from otel_db.instrumentation.library_statements import LIBRARY_ISSUED
from otel_db.pipeline.db_span import SPAN_ID, db_system
from otel_db.pipeline.draft import SPAN_FIELDS, SpanDraft, plain_attributes
from otel_db.pipeline.enricher import SpanEnricher

#: Live spans whose application ancestor is remembered.
MAX_TRACKED_SPANS: Final = 16384
#: Application spans with statement counts.
MAX_TRACKED_PARENTS: Final = 4096
#: Distinct fingerprints counted per parent; further ones only add to the total.
MAX_FINGERPRINTS_PER_PARENT: Final = 256

_FINGERPRINT: Final = attr.QUERY_FINGERPRINT
_CLIENT: Final = SpanKind.CLIENT
_N_PLUS_ONE: Final = attr.N_PLUS_ONE
_LIBRARY_ISSUED: Final = attr.QUERY_LIBRARY_ISSUED
_STATEMENT_COUNT: Final = attr.TRANSACTION_STATEMENT_COUNT
_FLAGGED: Final[Mapping[str, AttributeValue]] = {attr.N_PLUS_ONE: True}


def _is_database_or_transaction(span: Span, fields: bool) -> bool:
    if span.kind is not SpanKind.CLIENT:
        return False
    attributes = plain_attributes(span, fields)  # the public property builds a proxy per read
    return db_system(attributes) is not None or attr.TRANSACTION_ID in attributes


class _ParentCounts:
    __slots__ = (
        "by_fingerprint",
        "detected_count",
        "detected_fingerprint",
        "detected_query",
        "live",
        "span",
        "total",
        "total_ns",
    )

    def __init__(self, span: Span) -> None:
        self.span = span  # the live application span these counts belong to
        self.live = True  # False once the parent ended or the counts were evicted
        self.total = 0
        self.total_ns = 0  # summed duration of the counted statements
        self.by_fingerprint: dict[str, int] = {}
        self.detected_count = 0
        # The worst repetition's fingerprint (the object: the same query's fingerprint
        # is one cached string) and its query.
        self.detected_fingerprint: str | None = None
        self.detected_query = ""

    def attributes(self) -> dict[str, AttributeValue]:
        """What the parent span reports: the statement count, and the worst repetition."""
        out: dict[str, AttributeValue] = {attr.QUERY_COUNT: self.total}
        out[attr.QUERY_TOTAL_MS] = self.total_ns / 1e6
        if self.detected_count:
            out[attr.N_PLUS_ONE_DETECTED] = True
            out[attr.N_PLUS_ONE_COUNT] = self.detected_count
            out[attr.N_PLUS_ONE_QUERY] = self.detected_query
        return out


# Every detector, so that publish_counts reaches the one(s) counting for a span.
_DETECTORS: weakref.WeakSet[NPlusOneDetector] = weakref.WeakSet()


def publish_counts(span: Span) -> None:
    """Write the counts kept so far for the still-open ``span`` on it now.

    For readers that look at a parent before it ends (``QueryCapture``); the exported
    parent gets the same attributes when it ends either way.
    """
    for detector in list(_DETECTORS):
        detector.publish(span)


class NPlusOneDetector(SpanEnricher):
    """Counts statements per application span; flags a fingerprint repeated ``threshold``
    times (``0`` turns detection off; ``otel_db.query.count`` is still recorded)."""

    name = "n-plus-one"
    starts_client_only = True  # only client spans are counted or stand in between

    def __init__(self, threshold: int) -> None:
        self.threshold = int(threshold)
        self._fields = shortcut(SPAN_FIELDS)
        # The repetition that flags a statement (never, when detection is off).
        self._flag_at = self.threshold if self.threshold > 0 else sys.maxsize
        # A started client span's application span, or that span's counts (a statement
        # in a transaction begun after the parent's first statements). Later direct
        # statements of a parent with counts are not kept here (see on_start).
        self._ancestors: dict[int, Span | _ParentCounts] = {}
        self._parents: dict[int, _ParentCounts] = {}
        # Root database or transaction spans (no parent of their own, so no application
        # span to count for): their statements are done at once, without the parent
        # lookups below (a transaction without an application span: every statement).
        self._dead_ends: dict[int, None] = {}
        self._lock = threading.Lock()
        _DETECTORS.add(self)

    def on_start(self, span: Span, parent_context: Context | None) -> None:
        # Only client spans are counted or stand between a statement and its
        # application span (transactions), and only under a parent: every other span
        # is done here.
        try:  # the SDK's Span: its fields (its properties cost more than this hook)
            if not self._fields:
                raise AttributeError  # an unverified SDK version: the properties
            kind, parent_span_context = span._kind, span._parent
        except AttributeError:
            kind, parent_span_context = span.kind, span.parent
        if kind is not _CLIENT:
            return
        if LIBRARY_ISSUED.get():
            # A pool ping or the dialect's start-up: traced, marked, not the app's query.
            # Marked on the live span (rare: once per checkout or engine) so that every
            # processor sees it, the pytest fixtures' recorder beside this pipeline too.
            span.set_attribute(_LIBRARY_ISSUED, True)
            return
        if parent_span_context is None:
            # A root transaction span (a statement count from its start, see
            # transaction_start_attributes) is a dead end for its statements: noted now,
            # so that each stops at the first test below instead of at the end of it.
            if self._fields:
                stored = getattr(span._attributes, "_dict", span._attributes)
                if stored and _STATEMENT_COUNT in stored:
                    dead_ends = self._dead_ends
                    if len(dead_ends) >= MAX_TRACKED_SPANS:
                        dead_ends.clear()  # bounded; only the shortcut is lost
                    dead_ends[span._context[SPAN_ID]] = None
            return
        # The second and later statements under one application span: it already has
        # counts, and the statement is counted through its parent's id when it ends
        # (nothing to look up or remember now).
        parent_id = parent_span_context[SPAN_ID]
        if parent_id in self._parents or parent_id in self._dead_ends:
            return
        parent = trace.get_current_span(parent_context)
        # The exact-type test first: an ABC isinstance check costs ~1 us.
        if (type(parent) is not Span and not isinstance(parent, Span)) or not (
            parent.is_recording()
        ):
            return
        ancestor: Span | _ParentCounts | None = parent
        if _is_database_or_transaction(parent, self._fields):
            # A statement inside a transaction span counts for the span above it: the
            # one remembered for the transaction span, or, when that one already had
            # counts as the transaction started, those counts.
            ancestor = self._ancestors.get(parent.context.span_id)
            grandparent = parent.parent
            if ancestor is None and grandparent is not None:
                ancestor = self._parents.get(grandparent.span_id)
            if ancestor is None:
                if grandparent is None:
                    # Never anything to count for: its own start remembered no
                    # ancestor (it had no parent), and it has no parent to look up.
                    dead_ends = self._dead_ends
                    if len(dead_ends) >= MAX_TRACKED_SPANS:
                        dead_ends.clear()  # bounded; only the shortcut is lost
                    dead_ends[parent_id] = None
                return
        ancestors = self._ancestors
        with self._lock:
            if len(ancestors) >= MAX_TRACKED_SPANS:
                del ancestors[next(iter(ancestors))]
            ancestors[span.context.span_id] = ancestor

    def on_end(self, draft: SpanDraft) -> None:
        span = draft.span
        parent = span.parent
        attributes = draft.attributes
        updates = self._finish(
            draft.span_id,
            parent.span_id if parent is not None else None,
            draft.kind is SpanKind.CLIENT and _LIBRARY_ISSUED not in attributes,
            attributes,
            (span.end_time or 0) - (span.start_time or 0),
        )
        if updates:
            draft.set_attributes(updates)

    def on_client_end(
        self, span: ReadableSpan, span_id: int, attributes: dict[str, AttributeValue]
    ) -> str | None:
        parent = span._parent  # the lane's span is the SDK's ReadableSpan: its field
        parent_id = parent[SPAN_ID] if parent is not None else None
        parents = self._parents
        counts = parents.get(parent_id)  # type: ignore[arg-type]
        fingerprint = attributes.get(_FINGERPRINT)
        if (
            counts is None
            or type(fingerprint) is not str
            or span_id in parents
            or span_id in self._ancestors
            or _LIBRARY_ISSUED in attributes
        ):
            updates = self._finish(
                span_id,
                parent_id,
                _LIBRARY_ISSUED not in attributes,
                attributes,
                span._end_time - span._start_time,
            )
            if updates:
                attributes.update(updates)
            return None
        # The commonest statement: a later one under a parent that has counts, and
        # neither remembered nor a parent itself.
        with self._lock:
            flagged = self._count_locked(
                attributes, counts, fingerprint, span._end_time - span._start_time
            )
        if flagged:
            attributes[_N_PLUS_ONE] = True
        return None

    def _finish(
        self,
        span_id: int,
        parent_id: int | None,
        client: bool,
        attributes: Mapping[str, AttributeValue],
        duration_ns: int = 0,
    ) -> Mapping[str, AttributeValue] | None:
        """Counts the ended span if it is a statement, and drops what was kept for it;
        what it gets: the N+1 flag, and its own counts if it was a parent."""
        ancestors, parents = self._ancestors, self._parents
        if span_id not in ancestors and span_id not in parents and parent_id not in parents:
            return None  # neither counted nor counting: most spans, without the lock
        fingerprint = attributes.get(_FINGERPRINT) if client else None
        flagged = False
        with self._lock:  # once per span: both pops and the count
            # Remembered at start or, for a later statement under a parent with counts,
            # those counts (while the parent is open).
            ancestor = ancestors.pop(span_id, None) or parents.get(parent_id)  # type: ignore[arg-type]
            # This span may itself be a parent: its counts end with it.
            counts = parents.pop(span_id, None)
            if counts is not None:
                counts.live = False
            if ancestor is not None and type(fingerprint) is str:
                flagged = self._count_locked(attributes, ancestor, fingerprint, duration_ns)
        if counts is None:
            return _FLAGGED if flagged else None
        updates = counts.attributes()
        if flagged:
            updates[attr.N_PLUS_ONE] = True
        return updates

    def _count_locked(
        self,
        attributes: Mapping[str, AttributeValue],
        ancestor: Span | _ParentCounts,
        fingerprint: str,
        duration_ns: int = 0,
    ) -> bool:
        """Counts the statement for its application span; whether it is part of an N+1 run."""
        if type(ancestor) is _ParentCounts and ancestor.live:
            counts: _ParentCounts | None = ancestor
        else:
            counts = self._counts_for_locked(ancestor)
            if counts is None:
                return False
        counts.total += 1
        counts.total_ns += duration_ns
        by_fingerprint = counts.by_fingerprint
        seen = by_fingerprint.get(fingerprint, 0) + 1
        if seen == 1 and len(by_fingerprint) >= MAX_FINGERPRINTS_PER_PARENT:
            return False  # only added to the total
        by_fingerprint[fingerprint] = seen
        if seen < self._flag_at:
            return False
        if seen > counts.detected_count:  # the worst repetition so far names the query
            counts.detected_count = seen
            if fingerprint is not counts.detected_fingerprint:
                counts.detected_fingerprint = fingerprint
                # The summary when it names a target ("SELECT users"); a bare "SELECT"
                # says less than the (already sanitized) text.
                summary = attributes.get(attr.DB_QUERY_SUMMARY)
                query = summary if isinstance(summary, str) and " " in summary else None
                query = query or attributes.get(attr.DB_QUERY_TEXT) or summary
                counts.detected_query = str(query or fingerprint)
        return True

    def _counts_for_locked(self, ancestor: Span | _ParentCounts) -> _ParentCounts | None:
        """The live counts of the application span ``ancestor`` (or whose counts it is,
        once they ended or were evicted), made on its first statement."""
        parent: Span = ancestor.span if type(ancestor) is _ParentCounts else ancestor  # type: ignore[assignment]
        parent_id = parent.context.span_id
        counts = self._parents.get(parent_id)
        if counts is None:
            # The parent ended first (fire-and-forget work): its counts are written.
            # Checked under the lock its own on_end takes, so nothing is left behind.
            if not parent.is_recording():
                return None
            if len(self._parents) >= MAX_TRACKED_PARENTS:
                self._parents.pop(next(iter(self._parents))).live = False
            counts = self._parents[parent_id] = _ParentCounts(parent)
        return counts

    def publish(self, span: Span) -> None:
        """Write the counts kept for the still-open ``span`` on it (see publish_counts)."""
        with self._lock:
            counts = self._parents.get(span.context.span_id)
            published = counts.attributes() if counts is not None else None
        if published:
            span.set_attributes(published)

    def shutdown(self) -> None:
        with self._lock:
            self._ancestors.clear()
            self._parents.clear()
            self._dead_ends.clear()
