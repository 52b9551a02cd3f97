"""N+1 detection: the same statement fingerprint, over and over, under one parent.

The parent is the nearest enclosing span that is neither a database statement nor a
transaction span (the request, job or function span of the application). Each client
span's application ancestor is resolved when the span starts, while the parent chain is
still live, so a statement inside a transaction span counts for the application span
above it. Counting happens when a statement ends, after :class:`QueryShapeEnricher` gave
it a fingerprint and sanitized text.

The counts are kept here and written on the parent once, when the parent itself ends and
passes through the same enrichment stage (one draft write, instead of a write on the
live parent per statement: the SDK's lock and validation cost ~1.5 us each time).
Statement spans are marked ``otel_db.n_plus_one`` from the one that reaches the threshold
onward; the earlier ones have already been handed to the exporters and are not held back
for this (holding every statement until its parent ends would delay and buffer all
database spans). The parent's ``otel_db.n_plus_one.count`` gives the full count.
:func:`publish_counts` writes the counts on a still-open parent for readers that need
them before it ends (``otel_db.testing.QueryCapture``).

Memory: one entry per started, unfinished client span and one per parent that issued
statements, both capped (oldest dropped first) for spans that never end, and dropped
when the span ends.
"""

from __future__ import annotations

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
from otel_db.pipeline.db_span import db_system
from otel_db.pipeline.draft import SpanDraft, plain_attributes
from otel_db.pipeline.enricher import SpanEnricher

#: Live spans whose application ancestor is remembered.
MAX_TRACKED_SPANS: Final = 16384
#: Application spans with statement counts.
MAX_TRACKED_PARENTS: Final = 4096
#: Distinct fingerprints counted per parent; further ones only add to the total.
MAX_FINGERPRINTS_PER_PARENT: Final = 256

_FLAGGED: Final[Mapping[str, AttributeValue]] = {attr.N_PLUS_ONE: True}


def _is_database_or_transaction(span: Span) -> bool:
    if span.kind is not SpanKind.CLIENT:
        return False
    attributes = plain_attributes(span)  # the public property builds a proxy per read
    return db_system(attributes) is not None or attr.TRANSACTION_ID in attributes


class _ParentCounts:
    __slots__ = ("by_fingerprint", "detected_count", "detected_query", "live", "span", "total")

    def __init__(self, span: Span) -> None:
        self.span = span  # the live application span these counts belong to
        self.live = True  # False once the parent ended or the counts were evicted
        self.total = 0
        self.by_fingerprint: dict[str, int] = {}
        self.detected_count = 0
        self.detected_query = ""

    def attributes(self) -> dict[str, AttributeValue]:
        """What the parent span reports: the statement count, and the worst repetition."""
        out: dict[str, AttributeValue] = {attr.QUERY_COUNT: self.total}
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
        # A statement's application span, or its counts once it has some (the
        # statements after the first then count without looking the parent up again).
        self._ancestors: dict[int, Span | _ParentCounts] = {}
        self._parents: dict[int, _ParentCounts] = {}
        self._lock = threading.Lock()
        _DETECTORS.add(self)

    def on_start(self, span: Span, parent_context: Context | None) -> None:
        # Only client spans are counted or stand between a statement and its
        # application span (transactions), and only under a parent: every other span
        # is done here.
        if span.kind is not SpanKind.CLIENT:
            return
        parent_span_context = span.parent
        if parent_span_context is None:
            return
        # The second and later statements under one application span: it already has
        # counts, so it is known to be an application span (no context or attribute reads).
        ancestor: Span | _ParentCounts | None = self._parents.get(parent_span_context.span_id)
        if ancestor is None:
            parent = trace.get_current_span(parent_context)
            # The exact-type test first: an ABC isinstance check costs ~1 us.
            if (type(parent) is not Span and not isinstance(parent, Span)) or not (
                parent.is_recording()
            ):
                return
            # A statement inside a transaction span counts for the span above it.
            ancestor = (
                self._ancestors.get(parent.context.span_id)
                if _is_database_or_transaction(parent)
                else parent
            )
            if ancestor is None:
                return
        ancestors = self._ancestors
        with self._lock:
            if len(ancestors) >= MAX_TRACKED_SPANS:
                del ancestors[next(iter(ancestors))]
            ancestors[span.context.span_id] = ancestor

    def on_end(self, draft: SpanDraft) -> None:
        updates = self._finish(draft.span_id, draft.kind is SpanKind.CLIENT, draft.attributes)
        if updates:
            draft.set_attributes(updates)

    def on_client_end(
        self, span: ReadableSpan, span_id: int, attributes: dict[str, AttributeValue]
    ) -> str | None:
        updates = self._finish(span_id, True, attributes)
        if updates:
            attributes.update(updates)
        return None

    def _finish(
        self, span_id: int, client: bool, attributes: Mapping[str, AttributeValue]
    ) -> Mapping[str, AttributeValue] | None:
        """Counts the ended span if it is a statement, and drops what was kept for it;
        what it gets: the N+1 flag, and its own counts if it was a parent."""
        if span_id not in self._ancestors and span_id not in self._parents:
            return None  # neither counted nor counting: most spans, without the lock
        fingerprint = attributes.get(attr.QUERY_FINGERPRINT)
        countable = isinstance(fingerprint, str) and client
        flagged = False
        with self._lock:  # once per span: both pops and the count
            ancestor = self._ancestors.pop(span_id, None)
            # This span may itself be a parent: its counts end with it.
            counts = self._parents.pop(span_id, None)
            if counts is not None:
                counts.live = False
            if ancestor is not None and countable:
                flagged = self._count_locked(attributes, ancestor, fingerprint)  # type: ignore[arg-type]
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
    ) -> bool:
        """Counts the statement for its application span; whether it is part of an N+1 run."""
        if type(ancestor) is _ParentCounts:
            if ancestor.live:
                counts: _ParentCounts | None = ancestor
            else:  # ended or evicted: as if only the parent span were known
                return self._count_locked(attributes, ancestor.span, fingerprint)
        else:
            parent: Span = ancestor  # type: ignore[assignment]
            parent_id = parent.context.span_id
            counts = self._parents.get(parent_id)
            if counts is None:
                # The parent ended first (fire-and-forget work): its counts are written.
                # Checked under the lock its own on_end takes, so nothing is left behind.
                if not parent.is_recording():
                    return False
                if len(self._parents) >= MAX_TRACKED_PARENTS:
                    self._parents.pop(next(iter(self._parents))).live = False
                counts = self._parents[parent_id] = _ParentCounts(parent)
        counts.total += 1
        seen = counts.by_fingerprint.get(fingerprint)
        if seen is not None or len(counts.by_fingerprint) < MAX_FINGERPRINTS_PER_PARENT:
            seen = (seen or 0) + 1
            counts.by_fingerprint[fingerprint] = seen
        if self.threshold <= 0 or seen is None or seen < self.threshold:
            return False
        if seen > counts.detected_count:  # the worst repetition so far names the query
            counts.detected_count = seen
            # The summary when it names a target ("SELECT users"); a bare "SELECT"
            # says less than the (already sanitized) text.
            summary = attributes.get(attr.DB_QUERY_SUMMARY)
            query = summary if isinstance(summary, str) and " " in summary else None
            query = query or attributes.get(attr.DB_QUERY_TEXT) or summary
            counts.detected_query = str(query or fingerprint)
        return True

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
