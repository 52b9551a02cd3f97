"""Which pool each checked-out DB-API connection came from, and how long it waited."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import Any

from otel_db.pools.snapshot import PoolSnapshot

#: Reads a pool's counts now: (pool, wait_ms) -> snapshot.
PoolReader = Callable[[Any, float | None], PoolSnapshot]


class Checkouts:
    """connection -> (pool, reader, wait_ms), weakly keyed: gone with the connection."""

    def __init__(self) -> None:
        self._by_connection: weakref.WeakKeyDictionary[Any, tuple[Any, PoolReader, float]] = (
            weakref.WeakKeyDictionary()
        )

    def checked_out(self, connection: Any, pool: Any, reader: PoolReader, wait_ms: float) -> None:
        # A connection type without weak references gets no pool facts.
        with contextlib.suppress(TypeError):
            self._by_connection[connection] = (pool, reader, wait_ms)

    def checked_in(self, connection: Any) -> None:
        with contextlib.suppress(TypeError):
            self._by_connection.pop(connection, None)

    def holds(self, connection: Any) -> bool:
        """Whether ``connection`` is checked out of a known pool (cheap: no pool read)."""
        try:
            return connection in self._by_connection
        except TypeError:
            return False

    def snapshot(self, connection: Any) -> PoolSnapshot | None:
        try:
            entry = self._by_connection.get(connection)
        except TypeError:
            return None
        if entry is None:
            return None
        pool, reader, wait_ms = entry
        return reader(pool, wait_ms)


CHECKOUTS = Checkouts()
