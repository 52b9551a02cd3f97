"""Pool facts for ``psycopg2.pool.SimpleConnectionPool`` and ``ThreadedConnectionPool``.

``getconn``/``putconn`` are wrapped on both classes (``SimpleConnectionPool.getconn`` is
an alias of the base method, so wrapping the base would miss it). Counts are read from
the pool's own ``_used`` / ``_pool`` at statement start, so closed or discarded
connections (``putconn(close=True)``) never skew them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from otel_db.metrics import pool_events
from otel_db.pipeline.containment import FAILURES
from otel_db.pools.checkouts import CHECKOUTS
from otel_db.pools.snapshot import (
    POOL_NAMES,
    PoolSnapshot,
    count_value,
    record_exhaustion,
    server_name,
)

_installed: list[tuple[Any, str]] = []
_lock = threading.Lock()


def read_pool(pool: Any, wait_ms: float | None) -> PoolSnapshot:
    # A subclass or a test double may hold anything there: only real counts are kept.
    return PoolSnapshot(
        name=POOL_NAMES.name(pool, _base_name(pool)),
        size=count_value(getattr(pool, "minconn", None)),
        max=count_value(getattr(pool, "maxconn", None)) or None,
        used=len(pool._used),
        idle=len(pool._pool),
        wait_ms=wait_ms,
    )


def _base_name(pool: Any) -> str:
    kwargs = getattr(pool, "_kwargs", {}) or {}
    args = getattr(pool, "_args", ()) or ()
    dsn = kwargs.get("dsn") or (args[0] if args else "")
    if dsn:
        try:
            from psycopg2.extensions import parse_dsn

            parsed = parse_dsn(dsn)
            port = parsed.get("port")
            return server_name(
                parsed.get("host"), int(port) if port else 5432, parsed.get("dbname")
            )
        except Exception:
            pass
    port = kwargs.get("port")
    return server_name(
        kwargs.get("host"),
        int(port) if port else 5432,
        kwargs.get("dbname") or kwargs.get("database"),
    )


def _total(pool: Any) -> int:
    return len(pool._used) + len(pool._pool)


def _read_for_metrics(pool: Any) -> tuple[str, int, int, int | None, int | None]:
    snapshot = read_pool(pool, None)
    # psycopg2 keeps at most ``minconn`` idle connections: it closes the others on putconn.
    return snapshot.name, snapshot.used, snapshot.idle, snapshot.max, snapshot.size


def _getconn(wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    before = _total(pool)
    started = time.perf_counter()
    try:
        with pool_events.pending(pool):
            connection = wrapped(*args, **kwargs)
    except Exception as error:
        _report(pool, started, error)
        raise
    try:
        waited = time.perf_counter() - started
        CHECKOUTS.checked_out(connection, pool, read_pool, waited * 1000.0)
        name = POOL_NAMES.name(pool, _base_name(pool))
        pool_events.checked_out(name, connection, waited, before < _total(pool))
        pool_events.observe(pool, _read_for_metrics)
    except Exception as failure:
        FAILURES.report("psycopg2 pool checkout", failure)
    return connection


def _report(pool: Any, started: float, error: BaseException) -> None:
    try:
        from psycopg2.pool import PoolError

        if isinstance(error, PoolError) and "exhausted" in str(error):
            name = POOL_NAMES.name(pool, _base_name(pool))
            pool_events.timed_out(name)
            record_exhaustion(name, (time.perf_counter() - started) * 1000.0, error)
    except Exception as failure:
        FAILURES.report("psycopg2 pool exhaustion recording", failure)


def _putconn(wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    connection = args[0] if args else kwargs.get("conn")
    try:
        if connection is not None:
            CHECKOUTS.checked_in(connection)
            pool_events.checked_in(connection)
    except Exception as failure:
        FAILURES.report("psycopg2 pool checkin", failure)
    return wrapped(*args, **kwargs)


def install() -> None:
    with _lock:
        if _installed:
            return
        import psycopg2.pool
        from wrapt import wrap_function_wrapper

        for cls in ("SimpleConnectionPool", "ThreadedConnectionPool"):
            wrap_function_wrapper(psycopg2.pool, f"{cls}.getconn", _getconn)
            wrap_function_wrapper(psycopg2.pool, f"{cls}.putconn", _putconn)
            _installed.append((getattr(psycopg2.pool, cls), "getconn"))
            _installed.append((getattr(psycopg2.pool, cls), "putconn"))


def uninstall() -> None:
    from opentelemetry.instrumentation.utils import unwrap

    with _lock:
        for cls, method in _installed:
            unwrap(cls, method)
        _installed.clear()
