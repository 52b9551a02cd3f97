"""The live pools the connection gauges read, held weakly: a dropped pool just vanishes."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otel_db.pipeline.containment import FAILURES


@dataclass(frozen=True, slots=True)
class PoolState:
    name: str
    used: int
    idle: int
    max: int | None
    idle_max: int | None
    pending: int


#: Reads a pool now: pool -> (name, used, idle, max, idle_max); None when it cannot tell.
PoolReader = Callable[[Any], tuple[str, int, int, int | None, int | None] | None]

_lock = threading.Lock()
_pools: weakref.WeakKeyDictionary[Any, PoolReader] = weakref.WeakKeyDictionary()
#: pool -> its checkouts in progress, one item each: ``deque.append`` / ``deque.pop`` are
#: atomic, so counting takes no lock; ``len`` is the gauge's value.
_pending: weakref.WeakKeyDictionary[Any, deque[None]] = weakref.WeakKeyDictionary()


def observe(pool: Any, reader: PoolReader) -> None:
    """Make ``pool`` visible to the gauges (idempotent; cheap when already known)."""
    if pool in _pools:
        return
    with _lock, contextlib.suppress(TypeError):
        _pools[pool] = reader


def pending_counter(pool: Any) -> deque[None] | None:
    """``pool``'s pending-request counter (created once; None: no weak references).

    A checkout appends before it waits and pops once it has its connection or gave up.
    Callers that check out often keep the counter rather than looking it up each time.
    """
    try:
        found = _pending.get(pool)
        if found is None:
            with _lock:
                found = _pending.get(pool)
                if found is None:
                    found = _pending[pool] = deque()
        return found
    except TypeError:  # no weak references: not counted
        return None


class waiting:  # lower case: used like the function it replaced, ``with waiting(pool):``
    """Counts a checkout in progress as a pending request of ``pool``.

    A class rather than a generator context manager: it wraps every checkout.
    """

    __slots__ = ("_counter",)

    def __init__(self, pool: Any) -> None:
        self._counter = pending_counter(pool)

    def __enter__(self) -> None:
        if self._counter is not None:
            self._counter.append(None)

    def __exit__(self, *exc_info: object) -> None:
        if self._counter is not None:
            try:  # noqa: SIM105 - hot path: no context manager object per call
                self._counter.pop()
            except IndexError:  # unbalanced: never below zero
                pass


def states() -> list[PoolState]:
    """Every live pool's counts, read now (the gauges' callback)."""
    with _lock:
        entries = list(_pools.items())
        pending = {pool: len(counter) for pool, counter in _pending.items()}
    out: list[PoolState] = []
    for pool, reader in entries:
        try:
            read = reader(pool)
        except Exception as failure:
            FAILURES.report("reading a pool for metrics", failure)
            continue
        if read is None:
            continue
        name, used, idle, maximum, idle_max = read
        out.append(PoolState(name, used, idle, maximum, idle_max, pending.get(pool, 0)))
    return out
