"""Id-keyed tables: an entry lives as long as its object, and a reused id is a miss."""

from __future__ import annotations

import gc
import weakref

from otel_db.by_id import IdTable, remember


class _Thing:
    pass


def _lookup(table: IdTable[str], obj: object) -> str | None:
    entry = table.get(id(obj))
    return entry[1] if entry is not None and entry[0]() is obj else None


def test_an_entry_is_found_while_its_object_lives_and_goes_with_it():
    table: IdTable[str] = {}
    thing = _Thing()
    assert remember(table, thing, "facts") == "facts"
    assert _lookup(table, thing) == "facts"
    del thing
    gc.collect()
    assert table == {}


def test_a_newer_object_with_the_same_id_keeps_its_entry_when_the_old_one_dies():
    table: IdTable[str] = {}
    old, new = _Thing(), _Thing()
    remember(table, old, "old")
    # Stand-in for the address reuse: the new object's entry lands on the old one's key.
    old_key = id(old)
    table[old_key] = (weakref.ref(new), "new")
    del old
    gc.collect()
    assert table[old_key][1] == "new"


def test_an_object_without_weak_references_is_not_kept():
    table: IdTable[str] = {}
    assert remember(table, 42, "facts") == "facts"
    assert table == {}


def test_a_full_table_is_emptied_before_the_next_entry():
    table: IdTable[str] = {}
    things = [_Thing() for _ in range(5)]
    for thing in things[:3]:
        remember(table, thing, "kept", max_entries=3)
    remember(table, things[3], "fourth", max_entries=3)
    assert len(table) == 1 and _lookup(table, things[3]) == "fourth"
    assert _lookup(table, things[0]) is None
