"""Histogram recording for attribute sets that never change, without the SDK's per-call work.

The SDK's ``Histogram.record`` does the same work on every call whatever the attributes:
a frozen ``Measurement`` dataclass, a cleaned copy of the attributes, another copy and a
sorted, recursive hash of them per view, then the aggregation's ``aggregate`` (a lock, a
sum, a bisect). With the five attributes of ``db.client.operation.duration`` that is
~9 us per call; the aggregation itself is a small part of it.

otel_db records its per-statement and per-checkout histograms with attribute dicts that
are built once (per pool and command, per pool name) and never mutated afterwards. For
those, :class:`SharedAttributesHistogram` lets the SDK record the first measurement of an
attribute set the public way (which creates the aggregation), then looks up the
aggregation objects the SDK made for that set (one per reader and matching view) and
hands later measurements straight to their ``aggregate``: the same objects, the same
sums, counts, buckets and min/max the public path would have produced.

Anything that would make the shortcut differ from the public path sends the measurement
through ``Histogram.record`` instead: an instrument that is not the SDK's own histogram
(API proxy, no-op, subclass overriding ``record``), an exemplar filter other than
``always_off`` (the distro's default; exemplars need the context and the cleaned
attributes), a reader added or removed, a disabled meter, a value that is negative or
not finite (the SDK warns and drops it), an aggregation table the SDK no longer holds.
Every check that can change while the process runs is made on every call: SDK 1.45.2
replaces a view match's whole ``_attributes_aggregation`` dict on each delta
collection, so each record first checks (by identity) that the table it bound into is
still the match's, and aggregates under the match's lock as the SDK does then. The
shortcut binds only on the exact SDK versions in :mod:`otel_db.compat.verified`; on
any other, and after any exception on the fast path, every measurement takes the
public path. If the SDK's internals ever change shape, binding fails the same way.

State is bounded: at most :data:`MAX_BOUND` attribute sets per histogram (beyond it the
public path), each holding a strong reference to its attributes dict so the dict's
``id`` cannot be reused while it is a key.
"""

from __future__ import annotations

import logging
import math
import threading
from time import time_ns
from typing import Any

from otel_db.compat.verified import shortcut

_logger = logging.getLogger(__name__)

MAX_BOUND = 4_096
#: After a failed bind (e.g. an API proxy instrument before the SDK provider was set),
#: how many public records pass before binding is tried again.
RETRY_AFTER = 1_024

_INF = math.inf

try:  # SDK internals the shortcut relies on; without them every record is public
    from opentelemetry.attributes import _clean_attribute_value
    from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
    from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOffExemplarFilter
    from opentelemetry.sdk.metrics._internal.instrument import Histogram as _SdkHistogram
    from opentelemetry.sdk.metrics._internal.measurement_consumer import (
        SynchronousMeasurementConsumer,
    )
except Exception:  # pragma: no cover - a different SDK layout
    _SdkHistogram = None

#: The shortcut named in :mod:`otel_db.compat.verified`: off on unverified SDK versions.
SHORTCUT = "sdk.metrics.aggregations"


class _Point:
    """What an aggregation reads from a ``Measurement`` (same field names)."""

    __slots__ = ("attributes", "context", "instrument", "time_unix_nano", "value")

    def __init__(self, value: float, time_unix_nano: int, instrument: Any, attributes: Any) -> None:
        self.value = value
        self.time_unix_nano = time_unix_nano
        self.instrument = instrument
        self.context = None  # only exemplar sampling reads it, and that is off here
        self.attributes = attributes


class _Binding:
    """One attribute set's aggregations, valid while ``storages`` is the consumer's and
    each view match still holds the aggregation table the binding found them in."""

    __slots__ = ("aggregations", "attributes", "cleaned", "entries", "locked", "storages", "tables")

    def __init__(
        self, attributes: Any, cleaned: Any, storages: Any, entries: tuple[_Entry, ...]
    ) -> None:
        self.attributes = attributes  # strong reference: keeps id(attributes) unique
        self.cleaned = cleaned  # what the SDK's Measurement would hold
        self.storages = storages
        self.entries = entries
        # Per record: the identity checks, then the aggregations (flat tuples, no unpacking
        # of what a record does not use).
        self.tables = tuple((match, table) for match, table, _a, _l in entries)
        self.aggregations = tuple(aggregation for _m, _t, aggregation, _l in entries)
        self.locked = any(lock is not None for _m, _t, _a, lock in entries)


#: (view match, its aggregation table, the aggregation, the match's lock or None).
#: The lock is there when the SDK replaces the table on delta collection (1.45.2's
#: ``_reset_on_collect``): the SDK itself aggregates under it then, so that a
#: collection cannot swap the table between the lookup and the ``aggregate``.
_Entry = tuple[Any, dict[Any, Any], Any, Any]


def _bind(histogram: Any, attributes: Any) -> _Binding | None:
    """The aggregations the SDK holds for ``attributes`` on ``histogram``, or None."""
    if _SdkHistogram is None or not isinstance(histogram, _SdkHistogram):
        return None
    if not shortcut(SHORTCUT):
        return None
    if type(histogram).record is not _SdkHistogram.record:
        return None
    if not hasattr(histogram, "_meter_config"):
        return None
    consumer = getattr(histogram, "_measurement_consumer", None)
    if type(consumer) is not SynchronousMeasurementConsumer:
        return None
    if type(consumer._sdk_config.exemplar_filter) is not AlwaysOffExemplarFilter:
        return None
    storages = consumer._reader_storages
    cleaned = _clean_attribute_value(attributes, None)  # what Measurement would hold
    entries: list[_Entry] = []
    for storage in storages.values():
        for match in storage._get_or_init_view_instrument_match(histogram):
            keys = match._view._attribute_keys
            if keys is None:
                kept = dict(cleaned)
            else:
                kept = {k: v for k, v in cleaned.items() if k in keys}
            key = _hash_attributes(kept)
            table = match._attributes_aggregation
            if type(table) is not dict:
                return None
            aggregation = table.get(key)
            if aggregation is None or not callable(getattr(aggregation, "aggregate", None)):
                return None
            lock = match._lock if getattr(match, "_reset_on_collect", False) else None
            if lock is not None and not callable(getattr(match, "consume_measurement", None)):
                return None
            entries.append((match, table, aggregation, lock))
    return _Binding(attributes, cleaned, storages, tuple(entries))


class SharedAttributesHistogram:
    """``record(amount, attributes)`` for attribute dicts the caller never mutates.

    Pass only long-lived dicts built once (per pool, per pool and command): a dict built
    per call would take the public path after the first :data:`MAX_BOUND` and pin those
    dicts in memory until then. Never raises more than ``Histogram.record`` does.
    """

    __slots__ = ("_bound", "_broken", "_lock", "_retry", "histogram")

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self._bound: dict[int, _Binding] = {}
        self._lock = threading.Lock()
        self._retry = 0
        #: A fast path raised once: this histogram records the public way from then on.
        self._broken = False

    def record(self, amount: float, attributes: Any) -> None:
        binding = self._bound.get(id(attributes))
        if binding is not None and binding.attributes is attributes:
            # (Inlined: this runs per statement; a helper call costs more than the checks.)
            try:
                histogram = self.histogram
                config = histogram._meter_config  # what histogram._is_enabled() reads
                if (
                    binding.storages is histogram._measurement_consumer._reader_storages
                    and (config is None or config.is_enabled)
                    and 0.0 <= amount < _INF
                ):
                    # SDK 1.45.2 replaces a delta match's whole table: an identity check.
                    for match, table in binding.tables:
                        if match._attributes_aggregation is not table:
                            break
                    else:
                        point = _Point(amount, time_ns(), histogram, attributes)
                        if binding.locked:
                            self._aggregate_locked(binding, point)
                        else:
                            for aggregation in binding.aggregations:
                                aggregation.aggregate(point, False)
                        return
            except Exception:  # a shortcut never fails a statement: the public path
                self._broken = True
                self._bound.clear()
                _logger.debug("otel_db: histogram shortcut failed; public path", exc_info=True)
                self.histogram.record(amount, attributes)
                return
            # Readers, meter state or aggregation tables changed: rebind after this record.
            with self._lock:
                self._bound.pop(id(attributes), None)
        self.histogram.record(amount, attributes)
        self._maybe_bind(attributes)

    def _aggregate_locked(self, binding: _Binding, point: _Point) -> None:
        """Record ``point`` where some match replaces its table on delta collection."""
        for match, table, aggregation, lock in binding.entries:
            if lock is None:
                aggregation.aggregate(point, False)
                continue
            with lock:
                current = match._attributes_aggregation is table
                if current:
                    aggregation.aggregate(point, False)
            if not current:
                # Collected since the check: this match's share the SDK's way (it takes
                # the lock itself); the next record rebinds.
                match.consume_measurement(
                    _Point(point.value, point.time_unix_nano, point.instrument, binding.cleaned),
                    False,
                )

    def _maybe_bind(self, attributes: Any) -> None:
        if self._broken or len(self._bound) >= MAX_BOUND:
            return
        if self._retry:
            self._retry -= 1
            return
        try:
            binding = _bind(self.histogram, attributes)
        except Exception:  # an SDK whose internals differ: stay on the public path
            binding = None
        if binding is None:
            self._retry = RETRY_AFTER
            return
        with self._lock:
            if len(self._bound) < MAX_BOUND:
                self._bound[id(attributes)] = binding


__all__ = ["MAX_BOUND", "SharedAttributesHistogram"]
