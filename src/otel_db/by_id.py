"""Facts about live objects, kept under the object's ``id()`` for hot-path lookups.

A ``WeakKeyDictionary`` lookup makes a weak reference per call; the statement and
checkout paths read these tables on every statement. A plain dict keyed by ``id(obj)``
holding ``(weak reference, value)`` is read inline instead::

    entry = table.get(id(obj))
    value = entry[1] if entry is not None and entry[0]() is obj else slow_path(obj)

The identity check makes a reused id (the object died, another took its address) a
miss, never another object's facts. :func:`remember` is the slow path's write.
"""

from __future__ import annotations

import weakref
from typing import Any, TypeVar

V = TypeVar("V")

IdTable = dict[int, tuple[weakref.ref[Any], V]]


def remember(table: IdTable[V], obj: Any, value: V, max_entries: int | None = None) -> V:
    """Keep ``value`` for ``obj`` in ``table`` while ``obj`` lives; returns ``value``.

    An object that cannot be weakly referenced is not kept (every lookup then takes the
    slow path). With ``max_entries``, a full table is emptied first: a cache, refilled on
    the next lookups. The entry goes with the object (its weak reference's callback),
    unless a newer object with the same id has replaced it meanwhile.
    """
    key = id(obj)
    try:
        ref = weakref.ref(obj, lambda dead: _forget(table, key, dead))
    except TypeError:
        return value
    if max_entries is not None and len(table) >= max_entries:
        table.clear()
    table[key] = (ref, value)
    return value


def _forget(table: IdTable[Any], key: int, dead: weakref.ref[Any]) -> None:
    entry = table.get(key)
    if entry is not None and entry[0] is dead:
        table.pop(key, None)
