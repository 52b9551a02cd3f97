"""What the pool wrappers report: checkouts, check-ins, timeouts, waits.

Called on the checkout path, so every function is cheap, contains its own failures and
keeps only weakly keyed or bounded state (a connection dropped without check-in leaves
nothing).

Each pool name's metric attributes are one dict built once (:func:`for_name`), so the
wait and use histograms record through
:class:`~otel_db.metrics.shared_histogram.SharedAttributesHistogram`. Wrappers that check
out often (redis) keep the :class:`PoolMetrics` of their pool instead of passing the name.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from otel_db import attributes as attr
from otel_db.metrics import pool_registry
from otel_db.metrics.instruments import recorders
from otel_db.pipeline.containment import FAILURES

_lock = threading.Lock()
_in_use: weakref.WeakKeyDictionary[Any, tuple[PoolMetrics, float]] = weakref.WeakKeyDictionary()


class PoolMetrics:
    """The metric attributes of one pool name, and recording with them."""

    __slots__ = ("attributes", "name", "shared")

    def __init__(self, name: str, shared: bool) -> None:
        self.name = name
        self.attributes = {attr.DB_CLIENT_CONNECTION_POOL_NAME: name}  # never mutated
        # Whether ``attributes`` lives as long as the name's entry (the cache below):
        # only then may the shared-attributes histograms bind it.
        self.shared = shared

    def waited(self, seconds: float, created: bool) -> None:
        """A checkout took ``seconds`` (``created``: opening a new connection)."""
        try:
            attributes = self.attributes
            for recorder in recorders():
                if self.shared:
                    recorder.wait_time_shared.record(seconds, attributes)
                else:
                    recorder.wait_time.record(seconds, attributes)
                if created:
                    recorder.create_time.record(seconds, attributes)
        except Exception as failure:
            FAILURES.report("pool checkout metrics", failure)

    def used(self, seconds: float) -> None:
        """A connection went back after ``seconds`` of use."""
        try:
            attributes = self.attributes
            for recorder in recorders():
                if self.shared:
                    recorder.use_time_shared.record(seconds, attributes)
                else:
                    recorder.use_time.record(seconds, attributes)
        except Exception as failure:
            FAILURES.report("pool use-time metrics", failure)

    def timed_out(self) -> None:
        try:
            for recorder in recorders():
                recorder.timeouts.add(1, self.attributes)
        except Exception as failure:
            FAILURES.report("pool timeout metrics", failure)


_by_name: dict[str, PoolMetrics] = {}
_MAX_NAMES = 1_024


def for_name(name: str) -> PoolMetrics:
    """Pool ``name``'s metrics: built once per name (up to :data:`_MAX_NAMES` names; past
    that, built per call and recorded through the SDK's public path)."""
    found = _by_name.get(name)
    if found is None:
        if len(_by_name) < _MAX_NAMES:
            with _lock:
                found = _by_name.get(name)
                if found is None:
                    found = _by_name[name] = PoolMetrics(name, shared=True)
        else:
            found = PoolMetrics(name, shared=False)
    return found


def checked_out(
    name: str, connection: Any, waited_s: float, created: bool, *, track_use: bool = True
) -> None:
    """A checkout returned ``connection`` after ``waited_s`` (``created``: it opened one)."""
    try:
        metrics = for_name(name)
        metrics.waited(waited_s, created)
        if track_use:
            try:  # noqa: SIM105 - one dict store: atomic, no lock, no context manager
                _in_use[connection] = (metrics, time.perf_counter())
            except TypeError:  # no weak references: no use time
                pass
    except Exception as failure:
        FAILURES.report("pool checkout metrics", failure)


def started_use(connection: Any, metrics: PoolMetrics, at: float) -> None:
    """``connection``'s use time starts at ``at`` (``time.perf_counter``), for
    :func:`checked_in`; a wrapper that recorded the wait itself calls this."""
    try:  # noqa: SIM105 - hot path: no context manager object per call
        _in_use[connection] = (metrics, at)
    except TypeError:  # no weak references: no use time
        pass


def checked_in(connection: Any) -> None:
    """``connection`` went back to its pool: its use time ends."""
    try:
        entry = _in_use.pop(connection, None)
    except TypeError:
        return
    if entry is not None:
        entry[0].used(time.perf_counter() - entry[1])


def used_for(name: str, seconds: float) -> None:
    for_name(name).used(seconds)


def timed_out(name: str) -> None:
    try:
        for_name(name).timed_out()
    except Exception as failure:
        FAILURES.report("pool timeout metrics", failure)


pending = pool_registry.waiting
pending_counter = pool_registry.pending_counter
observe = pool_registry.observe
