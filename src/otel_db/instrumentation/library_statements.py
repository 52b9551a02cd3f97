"""Statements a library issues on its own: traced, marked, never counted as the app's.

SQLAlchemy pings a pooled connection before lending it (``pool_pre_ping=True``) and
asks the server a few questions on its first connection (``Dialect.initialize``:
version, schema, isolation level). These run on the driver's cursor, so the driver's
instrumentation traces them, under whatever application span is current. They are not
the application's queries: their spans get ``otel_db.query.library_issued=true`` and
neither the N+1 detector (``otel_db.query.count``) nor the pytest fixtures count them.

How: a class-level ``do_connect`` listener on ``Engine`` (public dialect event, fired
before the first connection of every engine is made, so before its initialisation and
any ping) wraps the engine's dialect *instance*'s public ``do_ping`` and ``initialize``
so that :data:`LIBRARY_ISSUED` is set while they run; the enrichment stage marks the
client spans that start meanwhile.

A new pooled connection is also set up by the pool's ``connect`` listeners before any
checkout: the dialect's ``on_connect`` (psycopg2's hstore look-up, isolation level,
``PRAGMA`` s) and the application's own ``connect`` listeners. Class-level listeners
run before the pool's own, so a class-level ``connect`` listener marks the thread from
there, and the ``checkout`` that lends the new connection (always the next pool event
on that thread) unmarks it; so does the next ``do_connect``, should a set-up listener
have raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from otel_db.pipeline.containment import FAILURES

#: True while a library runs statements of its own on this thread / task.
LIBRARY_ISSUED: ContextVar[bool] = ContextVar("otel_db_library_issued", default=False)

_WRAPPED_METHODS = ("do_ping", "initialize")
_MARK = "_otel_db_library_statements"
_lock = threading.Lock()
_installed = False


def issued_by_library(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, with :data:`LIBRARY_ISSUED` set while it runs."""

    def run(*args: Any, **kwargs: Any) -> Any:
        token = LIBRARY_ISSUED.set(True)
        try:
            return method(*args, **kwargs)
        finally:
            LIBRARY_ISSUED.reset(token)

    run.__wrapped__ = method  # type: ignore[attr-defined]
    run.__name__ = getattr(method, "__name__", "run")
    return run


def mark_dialect(dialect: Any) -> None:
    """Wrap ``dialect``'s own pings and initialisation (once per dialect instance)."""
    state = getattr(dialect, "__dict__", None)
    if state is None or state.get(_MARK):
        return
    for name in _WRAPPED_METHODS:
        method = getattr(dialect, name, None)
        if callable(method):
            setattr(dialect, name, issued_by_library(method))
    state[_MARK] = True


def _on_do_connect(dialect: Any, connection_record: Any, cargs: Any, cparams: Any) -> None:
    try:
        mark_dialect(dialect)
    except Exception as error:
        FAILURES.report("marking SQLAlchemy's own statements", error)
    # None: SQLAlchemy connects as it would have.


#: Set while a new pooled connection runs its ``connect`` listeners on this thread/task.
_SETTING_UP: ContextVar[bool] = ContextVar("otel_db_connection_set_up", default=False)


def _end_set_up() -> None:
    if _SETTING_UP.get():
        _SETTING_UP.set(False)
        LIBRARY_ISSUED.set(False)


def _on_pool_connect(dbapi_connection: Any, connection_record: Any) -> None:
    try:
        if not LIBRARY_ISSUED.get():
            _SETTING_UP.set(True)
            LIBRARY_ISSUED.set(True)
    except Exception as error:
        FAILURES.report("marking SQLAlchemy's connection set-up", error)


def _on_pool_checkout(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
    try:
        _end_set_up()
    except Exception as error:
        FAILURES.report("marking SQLAlchemy's connection set-up", error)


def _on_do_connect_unmarking(
    dialect: Any, connection_record: Any, cargs: Any, cparams: Any
) -> None:
    try:
        _end_set_up()  # a set-up listener of the previous connection raised
    except Exception as error:
        FAILURES.report("marking SQLAlchemy's connection set-up", error)
    _on_do_connect(dialect, connection_record, cargs, cparams)


_LISTENERS: tuple[tuple[str, str, Callable[..., Any]], ...] = (
    ("engine", "do_connect", _on_do_connect_unmarking),
    ("pool", "connect", _on_pool_connect),
    ("pool", "checkout", _on_pool_checkout),
)


def _targets() -> dict[str, type]:
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    return {"engine": Engine, "pool": Pool}


def install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        from sqlalchemy import event

        targets = _targets()
        for target, name, listener in _LISTENERS:
            event.listen(targets[target], name, listener)
        _installed = True


def uninstall() -> None:
    global _installed
    with _lock:
        if not _installed:
            return
        from sqlalchemy import event

        targets = _targets()
        for target, name, listener in _LISTENERS:
            event.remove(targets[target], name, listener)
        _installed = False
