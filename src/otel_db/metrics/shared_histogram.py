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
not finite (the SDK warns and drops it), an aggregation the SDK no longer holds. Every
check that can change while the process runs is made on every call. If the SDK's
internals ever change shape, binding fails and every measurement takes the public path.

State is bounded: at most :data:`MAX_BOUND` attribute sets per histogram (beyond it the
public path), each holding a strong reference to its attributes dict so the dict's
``id`` cannot be reused while it is a key.
"""

from __future__ import annotations

import math
import threading
from time import time_ns
from typing import Any

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

#: SDK release lines whose ``_ViewInstrumentMatch`` only ever adds aggregations (never
#: replaces or removes one: checked in their source, and by the unit tests for the
#: installed SDK). On those, a binding's aggregations stay the SDK's for good; on any
#: other line every record first checks that the SDK still holds them (a dict lookup
#: whose nested-tuple key is rehashed each time: ~4k instructions per record).
_VERIFIED_SDK_LINES = frozenset({(1, 45)})


def _sdk_line() -> tuple[int, ...]:
    try:
        from opentelemetry.sdk.version import __version__

        return tuple(int(part) for part in __version__.split(".")[:2])
    except Exception:  # pragma: no cover
        return ()


_PERMANENT_AGGREGATIONS = _sdk_line() in _VERIFIED_SDK_LINES


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
    """One attribute set's aggregations, valid while ``storages`` is the consumer's."""

    __slots__ = ("aggregations", "attributes", "checks", "storages")

    def __init__(self, attributes: Any, storages: Any, entries: list[tuple[Any, ...]]) -> None:
        self.attributes = attributes  # strong reference: keeps id(attributes) unique
        self.storages = storages
        self.aggregations = tuple(aggregation for _table, _key, aggregation in entries)
        # ((aggregation table, key, aggregation), ...): checked before every record
        # unless this SDK line never replaces an aggregation.
        self.checks = () if _PERMANENT_AGGREGATIONS else tuple(entries)


def _bind(histogram: Any, attributes: Any) -> _Binding | None:
    """The aggregations the SDK holds for ``attributes`` on ``histogram``, or None."""
    if _SdkHistogram is None or not isinstance(histogram, _SdkHistogram):
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
    entries = []
    for storage in storages.values():
        for match in storage._get_or_init_view_instrument_match(histogram):
            keys = match._view._attribute_keys
            if keys is None:
                kept = dict(cleaned)
            else:
                kept = {k: v for k, v in cleaned.items() if k in keys}
            key = _hash_attributes(kept)
            table = match._attributes_aggregation
            aggregation = table.get(key)
            if aggregation is None or not callable(getattr(aggregation, "aggregate", None)):
                return None
            entries.append((table, key, aggregation))
    return _Binding(attributes, storages, entries)


class SharedAttributesHistogram:
    """``record(amount, attributes)`` for attribute dicts the caller never mutates.

    Pass only long-lived dicts built once (per pool, per pool and command): a dict built
    per call would take the public path after the first :data:`MAX_BOUND` and pin those
    dicts in memory until then. Never raises more than ``Histogram.record`` does.
    """

    __slots__ = ("_bound", "_lock", "_retry", "histogram")

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self._bound: dict[int, _Binding] = {}
        self._lock = threading.Lock()
        self._retry = 0

    def record(self, amount: float, attributes: Any) -> None:
        binding = self._bound.get(id(attributes))
        if binding is not None and binding.attributes is attributes:
            histogram = self.histogram
            config = histogram._meter_config  # what histogram._is_enabled() reads
            if (
                binding.storages is histogram._measurement_consumer._reader_storages
                and (config is None or config.is_enabled)
                and 0.0 <= amount < _INF
            ):
                for table, key, aggregation in binding.checks:
                    if table.get(key) is not aggregation:
                        break
                else:
                    point = _Point(amount, time_ns(), histogram, attributes)
                    for aggregation in binding.aggregations:
                        aggregation.aggregate(point, False)
                    return
            # Readers, meter state or aggregations changed: rebind after this record.
            with self._lock:
                self._bound.pop(id(attributes), None)
        self.histogram.record(amount, attributes)
        self._maybe_bind(attributes)

    def _maybe_bind(self, attributes: Any) -> None:
        if len(self._bound) >= MAX_BOUND:
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
