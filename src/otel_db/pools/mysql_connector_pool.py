"""Pool facts for mysql-connector's ``MySQLConnectionPool`` (also what
``mysql.connector.connect(pool_name=..., pool_size=...)`` draws from).

The pool opens all ``pool_size`` connections when it is created and never waits: a
checkout takes an idle connection or fails at once with ``PoolError: ... pool
exhausted``. ``get_connection`` is wrapped (its duration, a reconnect included, is the
wait; an exhausted pool is recorded on the waiting span) and
``PooledMySQLConnection.close`` (the check-in). The pool exposes its size but not how
many of its connections are lent, so that is counted here, per pool, in weak maps (no
state on the pool or its connections): checkouts seen minus check-ins seen. Like the
pool's own queue, the count keeps a connection the application dropped without
``close()`` as in use (the pool never gets it back). Checkouts made before otel_db was
installed are not counted.

The pool's connections are opened by the pool itself, not through the traced
``mysql.connector.connect``: the ``PooledMySQLConnection`` handed out is wrapped in the
same traced connection proxy (statements, transactions) as a direct connection.

A lent connection's ``autocommit`` is known without asking the server (its getter is a
``SELECT @@session.autocommit`` round trip): the pool configures each connection from
the arguments ``set_config`` took, and resets a returned connection's session to them
(``pool_reset_session``, its default). With the reset off, or an option file in the
arguments, it is not known and the transaction tracking asks the driver.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from otel_db.instrumentation.dbapi_driver import remember_autocommit
from otel_db.metrics import pool_events
from otel_db.pipeline.containment import FAILURES
from otel_db.pools.checkouts import CHECKOUTS
from otel_db.pools.snapshot import POOL_NAMES, PoolSnapshot, count_value, record_exhaustion

#: pool -> connections lent and not yet back (as seen by the wrappers).
_USED: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
#: PooledMySQLConnection -> its pool, until it is closed.
_LENT: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
#: pool -> the autocommit its configuration gives every connection it lends.
_CONFIG_AUTOCOMMIT: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_count_lock = threading.Lock()
_installed: list[tuple[type, str]] = []
_lock = threading.Lock()

#: (PooledMySQLConnection) -> what the application gets instead (the traced proxy).
Wrap = Callable[[Any], Any]


def pool_name(pool: Any) -> str:
    base = getattr(pool, "pool_name", None)
    return POOL_NAMES.name(pool, base if isinstance(base, str) and base else "mysql")


def read_pool(pool: Any, wait_ms: float | None) -> PoolSnapshot:
    size = count_value(getattr(pool, "pool_size", None))
    used = _USED.get(pool, 0)
    if size is not None:
        used = min(used, size)
    return PoolSnapshot(
        name=pool_name(pool),
        size=size,
        max=size,
        used=used,
        idle=None if size is None else size - used,  # type: ignore[arg-type]
        wait_ms=wait_ms,
    )


def _read_for_metrics(pool: Any) -> tuple[str, int, int, int | None, int | None]:
    snapshot = read_pool(pool, None)
    return snapshot.name, snapshot.used, snapshot.idle, snapshot.max, snapshot.size


def _lent(pool: Any, pooled: Any) -> None:
    with _count_lock:
        _LENT[pooled] = pool
        _USED[pool] = _USED.get(pool, 0) + 1


def _returned(pooled: Any) -> None:
    with _count_lock:
        pool = _LENT.pop(pooled, None)
        if pool is not None:
            _USED[pool] = max(0, _USED.get(pool, 0) - 1)


def _set_config(wrapped: Any, pool: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        if kwargs and "option_files" not in kwargs:
            # (mysql-connector's own default is off)
            _CONFIG_AUTOCOMMIT[pool] = bool(kwargs.get("autocommit", False))
        elif kwargs:
            _CONFIG_AUTOCOMMIT.pop(pool, None)
    except Exception as failure:
        FAILURES.report("mysql-connector pool configuration", failure)
    return result


def _autocommit_at_lend(pool: Any) -> bool | None:
    if getattr(pool, "reset_session", None) is not True:
        return None  # the last borrower's session, whatever it set
    return _CONFIG_AUTOCOMMIT.get(pool)


def _get_connection(wrap: Wrap) -> Any:
    def get_connection(wrapped: Any, pool: Any, args: Any, kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            with pool_events.pending(pool):
                pooled = wrapped(*args, **kwargs)
        except Exception as error:
            _report(pool, started, error)
            raise
        try:
            waited = time.perf_counter() - started
            _lent(pool, pooled)
            autocommit = _autocommit_at_lend(pool)
            if autocommit is not None:
                remember_autocommit(pooled, autocommit)
            CHECKOUTS.checked_out(pooled, pool, read_pool, waited * 1000.0)
            pool_events.checked_out(pool_name(pool), pooled, waited, False)
            pool_events.observe(pool, _read_for_metrics)
        except Exception as failure:
            FAILURES.report("mysql-connector pool checkout", failure)
        try:
            return wrap(pooled)
        except Exception as failure:
            FAILURES.report("mysql-connector pooled connection tracing", failure)
            return pooled

    return get_connection


def _report(pool: Any, started: float, error: BaseException) -> None:
    try:
        if type(error).__name__ == "PoolError" and "exhausted" in str(error):
            name = pool_name(pool)
            pool_events.timed_out(name)
            record_exhaustion(name, (time.perf_counter() - started) * 1000.0, error)
    except Exception as failure:
        FAILURES.report("mysql-connector pool exhaustion recording", failure)


def _close(wrapped: Any, pooled: Any, args: Any, kwargs: Any) -> Any:
    try:
        CHECKOUTS.checked_in(pooled)
        pool_events.checked_in(pooled)
    except Exception as failure:
        FAILURES.report("mysql-connector pool checkin", failure)
    try:
        return wrapped(*args, **kwargs)
    finally:
        # (close() hands the connection back even when resetting its session failed)
        _returned(pooled)


def install(wrap: Wrap, new_connection: Callable[[Any], None]) -> None:
    """``wrap``: the traced proxy for a lent connection; ``new_connection``: called
    with each connection the pool lends (the real one inside the pool's wrapper)."""
    with _lock:
        if _installed:
            return
        import mysql.connector.pooling as pooling
        from wrapt import wrap_function_wrapper

        def pooled_init(wrapped: Any, pooled: Any, args: Any, kwargs: Any) -> Any:
            result = wrapped(*args, **kwargs)
            try:
                cnx = args[1] if len(args) > 1 else kwargs.get("cnx")
                if cnx is not None:
                    new_connection(cnx)
            except Exception as failure:
                FAILURES.report("mysql-connector pooled connection", failure)
            return result

        for cls, method, wrapper in (
            (pooling.MySQLConnectionPool, "set_config", _set_config),
            (pooling.MySQLConnectionPool, "get_connection", _get_connection(wrap)),
            (pooling.PooledMySQLConnection, "close", _close),
            (pooling.PooledMySQLConnection, "__init__", pooled_init),
        ):
            wrap_function_wrapper(cls, method, wrapper)
            _installed.append((cls, method))


def uninstall() -> None:
    from opentelemetry.instrumentation.utils import unwrap

    with _lock:
        for cls, method in _installed:
            unwrap(cls, method)
        _installed.clear()
