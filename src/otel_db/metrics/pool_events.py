"""What the pool wrappers report: checkouts, check-ins, timeouts, waits.

Called on the checkout path, so every function is cheap, contains its own failures and
keeps only weakly keyed state (a connection dropped without check-in leaves nothing).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import Any

from otel_db import attributes as attr
from otel_db.metrics import pool_registry
from otel_db.metrics.instruments import recorders
from otel_db.pipeline.containment import FAILURES

_lock = threading.Lock()
_in_use: weakref.WeakKeyDictionary[Any, tuple[str, float]] = weakref.WeakKeyDictionary()


_by_name: dict[str, dict[str, str]] = {}
_MAX_NAMES = 1_024


def _attributes(name: str) -> dict[str, str]:
    """The metric attributes of pool ``name``: built once per name (shared, read-only;
    the SDK copies them per measurement)."""
    found = _by_name.get(name)
    if found is None:
        found = {attr.DB_CLIENT_CONNECTION_POOL_NAME: name}
        if len(_by_name) < _MAX_NAMES:
            _by_name[name] = found
    return found


def checked_out(
    name: str, connection: Any, waited_s: float, created: bool, *, track_use: bool = True
) -> None:
    """A checkout returned ``connection`` after ``waited_s`` (``created``: it opened one)."""
    try:
        attributes = _attributes(name)
        for recorder in recorders():
            recorder.wait_time.record(waited_s, attributes)
            if created:
                recorder.create_time.record(waited_s, attributes)
        if track_use:
            with _lock, contextlib.suppress(TypeError):
                _in_use[connection] = (name, time.perf_counter())
    except Exception as failure:
        FAILURES.report("pool checkout metrics", failure)


def checked_in(connection: Any) -> None:
    """``connection`` went back to its pool: its use time ends."""
    try:
        with _lock:
            entry = _in_use.pop(connection, None)
    except TypeError:
        return
    if entry is not None:
        used_for(entry[0], time.perf_counter() - entry[1])


def used_for(name: str, seconds: float) -> None:
    try:
        attributes = _attributes(name)
        for recorder in recorders():
            recorder.use_time.record(seconds, attributes)
    except Exception as failure:
        FAILURES.report("pool use-time metrics", failure)


def timed_out(name: str) -> None:
    try:
        attributes = _attributes(name)
        for recorder in recorders():
            recorder.timeouts.add(1, attributes)
    except Exception as failure:
        FAILURES.report("pool timeout metrics", failure)


pending = pool_registry.waiting
"""Around a checkout: it counts in ``db.client.connection.pending_requests``."""

observe = pool_registry.observe
