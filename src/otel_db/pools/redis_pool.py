"""Pool facts for redis-py: ``ConnectionPool`` and ``BlockingConnectionPool``, sync and asyncio.

redis-py checks a connection out *inside* the command: contrib's statement span is
already current when ``get_connection`` runs. So the checkout is timed there and, if the
current span is a Redis statement span, the pool's counts are put on it right after the
checkout (the moment the statement really starts on the wire). Connections held across
statements (a pipeline after ``WATCH``, ``single_connection_client``) are remembered in
:data:`~otel_db.pools.checkouts.CHECKOUTS` and read when their statement starts (see
``instrumentation/redis.py``).

Counts come from the pool itself: ``_in_use_connections`` / ``_available_connections``
for ``ConnectionPool``, the created connections and the queue's non-empty slots for the
sync ``BlockingConnectionPool``. redis pools have no steady size (every connection they
create is kept), so ``size`` and ``max`` are both ``max_connections``.

A ``BlockingConnectionPool`` that gives up raises ``ConnectionError("No connection
available.")``; a full ``ConnectionPool`` raises ``MaxConnectionsError``. Both add the
``otel_db.pool.exhausted`` event to the waiting span; the app gets the library's error.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from opentelemetry import trace

from otel_db import attributes as attr
from otel_db.metrics import pool_events
from otel_db.pipeline.containment import FAILURES
from otel_db.pools.checkouts import CHECKOUTS
from otel_db.pools.snapshot import (
    POOL_EXHAUSTED_EVENT,
    POOL_NAMES,
    PoolSnapshot,
    record_exhaustion,
    server_name,
)

REDIS_SCOPE = "opentelemetry.instrumentation.redis"

_installed: list[tuple[Any, str]] = []
_lock = threading.Lock()


def pool_name(pool: Any) -> str:
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    path = kwargs.get("path")
    if path:  # unix socket
        return POOL_NAMES.name(pool, f"{path}/{kwargs.get('db', 0)}")
    base = server_name(kwargs.get("host") or "localhost", kwargs.get("port") or 6379, None)
    return POOL_NAMES.name(pool, f"{base}/{kwargs.get('db', 0)}")


def counts(pool: Any) -> tuple[int, int]:
    """(used, idle), read from the pool's own bookkeeping."""
    connections = getattr(pool, "_connections", None)
    queue = getattr(pool, "pool", None)
    if connections is not None and queue is not None:  # sync BlockingConnectionPool
        idle = sum(1 for slot in list(queue.queue) if slot is not None)
        return max(0, len(connections) - idle), idle
    return len(pool._in_use_connections), len(pool._available_connections)


def read_pool(pool: Any, wait_ms: float | None) -> PoolSnapshot:
    maximum = int(getattr(pool, "max_connections", 0) or 0)
    used, idle = counts(pool)
    return PoolSnapshot(
        name=pool_name(pool),
        size=maximum,
        max=maximum or None,
        used=used,
        idle=idle,
        wait_ms=wait_ms,
    )


def is_redis_statement(span: trace.Span) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    return span.is_recording() and getattr(scope, "name", "") == REDIS_SCOPE


def read_for_metrics(pool: Any) -> tuple[str, int, int, int | None, int | None]:
    maximum = int(getattr(pool, "max_connections", 0) or 0) or None
    used, idle = counts(pool)
    return pool_name(pool), used, idle, maximum, maximum


def _total(pool: Any) -> int:
    try:
        used, idle = counts(pool)
        return used + idle
    except Exception:
        return -1


def _checked_out(pool: Any, connection: Any, started: float, before: int) -> None:
    try:
        waited = time.perf_counter() - started
        wait_ms = waited * 1000.0
        CHECKOUTS.checked_out(connection, pool, read_pool, wait_ms)
        name = pool_name(pool)
        try:  # read once: for "grew the pool" and for the span
            used, idle = counts(pool)
        except Exception:
            used = idle = -1
        # A checkout that grew the pool spent its time opening the connection.
        pool_events.checked_out(name, connection, waited, 0 <= before < used + idle)
        pool_events.observe(pool, read_for_metrics)
        span = trace.get_current_span()
        if used >= 0 and is_redis_statement(span):
            maximum = int(getattr(pool, "max_connections", 0) or 0)
            snapshot = PoolSnapshot(name, maximum, maximum or None, used, idle, wait_ms)
            span.set_attributes(snapshot.attributes())
    except Exception as failure:
        FAILURES.report("redis pool checkout", failure)


def _failed(pool: Any, started: float, error: BaseException) -> None:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import MaxConnectionsError

        timed_out = isinstance(error, MaxConnectionsError) or (
            isinstance(error, RedisConnectionError) and "No connection available" in str(error)
        )
        if not timed_out:
            return
        name = pool_name(pool)
        waited_ms = (time.perf_counter() - started) * 1000.0
        pool_events.timed_out(name)
        span = trace.get_current_span()
        if is_redis_statement(span):
            # contrib's span records the exception itself as it propagates.
            span.add_event(
                POOL_EXHAUSTED_EVENT,
                {attr.DB_CLIENT_CONNECTION_POOL_NAME: name, attr.POOL_WAIT_MS: waited_ms},
            )
        else:
            record_exhaustion(name, waited_ms, error)
    except Exception as failure:
        FAILURES.report("redis pool exhaustion recording", failure)


def _released(pool: Any, connection: Any) -> None:
    try:
        CHECKOUTS.checked_in(connection)
        pool_events.checked_in(connection)
    except Exception as failure:
        FAILURES.report("redis pool checkin", failure)


def _get_connection(wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    before = _total(pool)
    started = time.perf_counter()
    with pool_events.pending(pool):
        try:
            connection = wrapped(*args, **kwargs)
        except Exception as error:
            _failed(pool, started, error)
            raise
    _checked_out(pool, connection, started, before)
    return connection


def _release(wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    connection = args[0] if args else kwargs.get("connection")
    if connection is not None:
        _released(pool, connection)
    return wrapped(*args, **kwargs)


async def _async_get_connection(
    wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    before = _total(pool)
    started = time.perf_counter()
    with pool_events.pending(pool):
        try:
            connection = await wrapped(*args, **kwargs)
        except Exception as error:
            _failed(pool, started, error)
            raise
    _checked_out(pool, connection, started, before)
    return connection


async def _async_release(
    wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    connection = args[0] if args else kwargs.get("connection")
    if connection is not None:
        _released(pool, connection)
    return await wrapped(*args, **kwargs)


def install() -> None:
    """Time checkouts of every redis-py pool class (once per process)."""
    with _lock:
        if _installed:
            return
        from wrapt import wrap_function_wrapper

        targets: list[tuple[str, Any, Any]] = [("redis.connection", _get_connection, _release)]
        try:
            import redis.asyncio.connection  # noqa: F401

            targets.append(("redis.asyncio.connection", _async_get_connection, _async_release))
        except ImportError:
            pass
        import importlib

        # Each class is wrapped separately: BlockingConnectionPool overrides both methods
        # without calling the base ones, so wrapping the base alone would miss it.
        for module_name, get_wrapper, release_wrapper in targets:
            module = importlib.import_module(module_name)
            for cls in ("ConnectionPool", "BlockingConnectionPool"):
                owner = getattr(module, cls)
                if "get_connection" in vars(owner):
                    wrap_function_wrapper(module, f"{cls}.get_connection", get_wrapper)
                    _installed.append((owner, "get_connection"))
                if "release" in vars(owner):
                    wrap_function_wrapper(module, f"{cls}.release", release_wrapper)
                    _installed.append((owner, "release"))


def uninstall() -> None:
    from opentelemetry.instrumentation.utils import unwrap

    with _lock:
        for cls, method in _installed:
            unwrap(cls, method)
        _installed.clear()
