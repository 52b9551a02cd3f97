"""Attributes a hook knows when a statement starts, written when its span ends.

Writing on a live SDK span costs a lock and a validation pass per attribute (about 4 us
for the seven pool attributes); the enrichment stage writes the same values into the
draft it builds anyway, as one dict update. Hooks that run at statement start (pool
counts, transaction id, bound parameters) hand their attributes here instead, keyed by
the span, and :class:`~otel_db.pipeline.stage.EnrichmentStage` applies them when that
span ends. Exporters behind the stage see exactly what they saw before; only processors
added beside otel_db's pipeline (which already miss every enrichment) miss them too.

With no stage running (otel_db's hooks used under another pipeline), attributes go
straight onto the live span, as before.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Final

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

#: Spans started and not yet ended with deferred attributes; beyond it the oldest entry
#: (a span that never ended) is dropped.
MAX_PENDING: Final = 8192


class DeferredAttributes:
    def __init__(self, capacity: int = MAX_PENDING) -> None:
        #: Span id -> attributes. The stage pops from it directly on its hottest path,
        #: so it is cleared, never replaced.
        self.pending: dict[int, dict[str, AttributeValue]] = {}
        self._capacity = capacity
        self._consumers = 0
        self._lock = threading.Lock()

    def add(self, span: Span, attributes: Mapping[str, AttributeValue]) -> None:
        """Attach ``attributes`` to ``span`` (at its end, or now when no stage runs)."""
        if not attributes or not span.is_recording():
            # A sampled-out span never reaches the stage: what it left here would only
            # wait for the cap to push it out, taking real spans' entries with it.
            return
        if not self._consumers:
            span.set_attributes(attributes)
            return
        key = span.get_span_context().span_id
        pending = self.pending
        found = pending.get(key)
        if found is not None:
            found.update(attributes)
            return
        if len(pending) >= self._capacity:
            # Another thread may evict the same entry: either way one is gone.
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del pending[next(iter(pending))]
        pending[key] = dict(attributes)

    def hand_over(self, span: Span, attributes: dict[str, AttributeValue]) -> None:
        """:meth:`add` for a caller that has just seen ``span`` recording and gives up
        ``attributes`` (a dict of its own, kept as it is instead of copied)."""
        if not self._consumers:
            span.set_attributes(attributes)
            return
        key = span.get_span_context().span_id
        pending = self.pending
        found = pending.get(key)
        if found is not None:
            found.update(attributes)
            return
        if len(pending) >= self._capacity:
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del pending[next(iter(pending))]
        pending[key] = attributes

    def take(self, span_id: int) -> dict[str, AttributeValue] | None:
        """The attributes deferred for the ending span, removed from here."""
        return self.pending.pop(span_id, None) if self.pending else None

    def consumer_started(self) -> None:
        with self._lock:
            self._consumers += 1

    def consumer_stopped(self) -> None:
        with self._lock:
            self._consumers = max(0, self._consumers - 1)
            if not self._consumers:
                self.pending.clear()

    def __len__(self) -> int:
        return len(self.pending)


#: The process's one registry: hooks and stages of every pipeline share it.
DEFERRED: Final = DeferredAttributes()
