"""The live pools the connection gauges read, held weakly: a dropped pool just vanishes."""

from __future__ import annotations

import contextlib
import threading
import weakref
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
_pending: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def observe(pool: Any, reader: PoolReader) -> None:
    """Make ``pool`` visible to the gauges (idempotent; cheap when already known)."""
    if pool in _pools:
        return
    with _lock, contextlib.suppress(TypeError):
        _pools[pool] = reader


class waiting:  # lower case: used like the function it replaced, ``with waiting(pool):``
    """Counts a checkout in progress as a pending request of ``pool``.

    A class rather than a generator context manager: it wraps every checkout.
    """

    __slots__ = ("_pool",)

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    def __enter__(self) -> None:
        pool = self._pool
        try:
            with _lock:
                _pending[pool] = _pending.get(pool, 0) + 1
        except TypeError:  # no weak references: not counted
            self._pool = None

    def __exit__(self, *exc_info: object) -> None:
        pool = self._pool
        if pool is None:
            return
        with _lock:
            left = _pending.get(pool, 1) - 1
            if left > 0:
                _pending[pool] = left
            else:
                _pending.pop(pool, None)


def states() -> list[PoolState]:
    """Every live pool's counts, read now (the gauges' callback)."""
    with _lock:
        entries = list(_pools.items())
        pending = dict(_pending.items())
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
