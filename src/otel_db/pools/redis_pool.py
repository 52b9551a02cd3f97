"""Pool facts for redis-py: ``ConnectionPool`` and ``BlockingConnectionPool``, sync and asyncio.

redis-py checks a connection out *inside* the command: contrib's statement span is
already current when ``get_connection`` runs. So the checkout is timed there and, if the
current span is a Redis statement span, the pool's counts are put on it right after the
checkout (the moment the statement really starts on the wire). Connections held across
statements (a pipeline after ``WATCH``, ``single_connection_client``) are registered in
:data:`~otel_db.pools.checkouts.CHECKOUTS` when a statement first runs on them while
held (:func:`hold`, called by ``instrumentation/redis.py``) and read when it starts.

This runs for every command, so the per-command work is a few attribute reads: the
pool's name, metric attributes and pending-request counter live in a :class:`PoolState`
on the pool object; the checkout time and wait of a connection live on the connection
(``_otel_db_checkout``) until it is released; both go with the object they are set on.

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
import weakref
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace.propagation import _SPAN_KEY

from otel_db import attributes as attr
from otel_db.metrics import pool_events
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
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

_perf_counter = time.perf_counter
_get_current_span = trace.get_current_span
_get_current = context.get_current

#: Attribute names otel_db sets on redis-py objects (they die with the object).
STATE_ATTRIBUTE = "_otel_db_pool_state"
CHECKOUT_ATTRIBUTE = "_otel_db_checkout"

_POOL_NAME = attr.DB_CLIENT_CONNECTION_POOL_NAME
_POOL_SIZE = attr.POOL_SIZE
_POOL_USED = attr.POOL_USED
_POOL_IDLE = attr.POOL_IDLE
_POOL_MAX = attr.POOL_MAX
_POOL_UTILIZATION = attr.POOL_UTILIZATION
_POOL_WAIT_MS = attr.POOL_WAIT_MS


def pool_name(pool: Any) -> str:
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    path = kwargs.get("path")
    if path:  # unix socket
        return POOL_NAMES.name(pool, f"{path}/{kwargs.get('db', 0)}")
    base = server_name(kwargs.get("host") or "localhost", kwargs.get("port") or 6379, None)
    return POOL_NAMES.name(pool, f"{base}/{kwargs.get('db', 0)}")


def _blocking_counts(pool: Any) -> tuple[int, int]:
    """(used, idle) of a sync ``BlockingConnectionPool``: created connections, and the
    queue's non-empty slots."""
    slots = list(pool.pool.queue)  # a copy: the queue may change under us
    idle = len(slots) - slots.count(None)  # empty slots are None
    return max(0, len(pool._connections) - idle), idle


def _plain_counts(pool: Any) -> tuple[int, int]:
    """(used, idle) of a ``ConnectionPool`` (sync or asyncio) or asyncio blocking pool."""
    return len(pool._in_use_connections), len(pool._available_connections)


def _counter_for(pool: Any) -> Any:
    if getattr(pool, "_connections", None) is not None and getattr(pool, "pool", None) is not None:
        return _blocking_counts
    return _plain_counts


def counts(pool: Any) -> tuple[int, int]:
    """(used, idle), read from the pool's own bookkeeping."""
    return _counter_for(pool)(pool)


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


class PoolState:
    """What otel_db keeps per redis pool, on the pool itself (gone with it).

    ``operations`` (command -> ``db.client.operation.duration`` attributes) and
    ``system_attributes`` are filled by ``instrumentation/redis.py`` whether or not pool
    facts are on; the rest is set by
    :func:`tracked_state` at the pool's first timed checkout.
    """

    __slots__ = (
        "command_spans",
        "counts",
        "metrics",
        "name",
        "operations",
        "pending",
        "pool_ref",
        "system_attributes",
    )

    def __init__(self, pool_ref: weakref.ref[Any]) -> None:
        self.pool_ref = pool_ref
        self.counts: Any = counts  # (used, idle) reader for this kind of pool
        self.operations: dict[Any, dict[str, Any]] = {}
        #: (command, argument count) -> contrib's span name and attributes for it
        #: (``instrumentation/redis_command_span.py``; shared: never mutated)
        self.command_spans: dict[tuple[Any, int], tuple[str, dict[str, Any]]] = {}
        #: db.system.name, db.namespace, server.* of the pool (shared: never mutated)
        self.system_attributes: dict[str, Any] | None = None
        self.name: str | None = None
        self.metrics: pool_events.PoolMetrics | None = None
        self.pending: Any = None  # the pool's pending-request counter (a deque)


#: Pools that take no attributes (``__slots__`` subclasses) keep their state here.
_states: weakref.WeakKeyDictionary[Any, PoolState] = weakref.WeakKeyDictionary()


def pool_state(pool: Any) -> PoolState | None:
    """``pool``'s state (created once); None for a pool without weak references."""
    found = getattr(pool, STATE_ATTRIBUTE, None)
    # The identity check keeps a copied pool (copy.copy copies __dict__) from sharing it.
    if found is not None and found.pool_ref() is pool:
        return found
    try:
        if _states:  # pools that take no attributes: their weakly held state
            found = _states.get(pool)
            if found is not None:
                return found
        return _new_state(pool)
    except Exception as failure:
        FAILURES.report("redis pool state", failure)
        return None


def _new_state(pool: Any) -> PoolState | None:
    with _lock:
        found = getattr(pool, STATE_ATTRIBUTE, None)
        if found is not None and found.pool_ref() is pool:
            return found
        try:
            found = _states.get(pool)
        except TypeError:  # no weak references
            return None
        if found is None:
            found = PoolState(weakref.ref(pool))
            try:
                setattr(pool, STATE_ATTRIBUTE, found)
            except (AttributeError, TypeError):
                _states[pool] = found
        return found


def tracked_state(pool: Any) -> PoolState | None:
    """``pool``'s state with its name, metrics and pending counter (None: not tracked)."""
    state = pool_state(pool)
    if state is None or state.metrics is not None:
        return state
    try:
        name = pool_name(pool)
        state.counts = _counter_for(pool)
        state.pending = pool_events.pending_counter(pool)
        state.name = name
        pool_events.observe(pool, read_for_metrics)
        state.metrics = pool_events.for_name(name)  # last: marks the state complete
        return state
    except Exception as failure:
        FAILURES.report("redis pool tracking", failure)
        return None


#: Types found in the context under the current-span key: whether each is a Span.
_span_types: dict[type, bool] = {}


def _is_span_type(span_type: type) -> bool:
    known = _span_types.get(span_type)
    if known is None:
        known = issubclass(span_type, trace.Span)
        if len(_span_types) < 64:
            _span_types[span_type] = known
    return known


def _checked_out(state: PoolState, pool: Any, connection: Any, started: float, before: int) -> None:
    try:
        now = _perf_counter()
        waited = now - started
        wait_ms = waited * 1000.0
        try:  # read once: for "grew the pool" and for the span
            used, idle = state.counts(pool)
        except Exception:
            used = idle = -1
        # A checkout that grew the pool spent its time opening the connection.
        state.metrics.waited(waited, 0 <= before < used + idle)  # type: ignore[union-attr]
        # The use time starts now; the wait is kept for a statement that runs on this
        # connection while it is held (see hold()).
        try:
            connection.__dict__[CHECKOUT_ATTRIBUTE] = (state, now, wait_ms, False)
        except AttributeError:  # no __dict__: the weakly keyed tables instead
            CHECKOUTS.checked_out(connection, pool, read_pool, wait_ms)
            pool_events.started_use(connection, state.metrics, now)  # type: ignore[arg-type]
        if used < 0:
            return
        # trace.get_current_span(), without its layers and its ABC isinstance per call.
        span = _get_current().get(_SPAN_KEY)
        if (
            span is not None
            and _is_span_type(type(span))
            and span.is_recording()
            and getattr(getattr(span, "instrumentation_scope", None), "name", "") == REDIS_SCOPE
        ):
            maximum = int(getattr(pool, "max_connections", 0) or 0)
            # PoolSnapshot.attributes(), written out: this runs for every statement.
            if maximum > 0:
                facts = {
                    _POOL_NAME: state.name,
                    _POOL_SIZE: maximum,
                    _POOL_USED: used,
                    _POOL_IDLE: idle,
                    _POOL_MAX: maximum,
                    _POOL_UTILIZATION: min(1.0, used / maximum),
                    _POOL_WAIT_MS: wait_ms,
                }
            else:
                facts = {
                    _POOL_NAME: state.name,
                    _POOL_SIZE: maximum,
                    _POOL_USED: used,
                    _POOL_IDLE: idle,
                    _POOL_WAIT_MS: wait_ms,
                }
            # Written into the span the enrichment stage builds when it ends: one dict
            # update instead of the SDK's locked, validated write on the live span.
            DEFERRED.add(span, facts)
    except Exception as failure:
        FAILURES.report("redis pool checkout", failure)


def hold(connection: Any) -> None:
    """``connection`` is held across statements (a ``WATCH`` pipeline, a
    ``single_connection_client``): make its checkout facts readable when a statement
    starts on it (:data:`CHECKOUTS`, read by the statement-site enricher).

    Registered on first use rather than at every checkout: most connections go back
    to the pool within the statement that took them.
    """
    try:
        facts = connection.__dict__
        entry = facts.get(CHECKOUT_ATTRIBUTE)
        if entry is None or entry[3]:
            return  # not from a tracked checkout, or already registered
        state, at, wait_ms, _held = entry
        pool = state.pool_ref()
        if pool is not None:
            CHECKOUTS.checked_out(connection, pool, read_pool, wait_ms)
            facts[CHECKOUT_ATTRIBUTE] = (state, at, wait_ms, True)
    except AttributeError:  # no __dict__: registered at checkout
        return
    except Exception as failure:
        FAILURES.report("redis held connection", failure)


def _failed(state: PoolState, pool: Any, started: float, error: BaseException) -> None:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import MaxConnectionsError

        timed_out = isinstance(error, MaxConnectionsError) or (
            isinstance(error, RedisConnectionError) and "No connection available" in str(error)
        )
        if not timed_out:
            return
        name = state.name or pool_name(pool)
        waited_ms = (_perf_counter() - started) * 1000.0
        state.metrics.timed_out()  # type: ignore[union-attr]
        span = _get_current_span()
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


def _released(connection: Any) -> None:
    try:
        try:
            entry = connection.__dict__.pop(CHECKOUT_ATTRIBUTE, None)
        except AttributeError:  # no __dict__: tracked in the weakly keyed tables
            CHECKOUTS.checked_in(connection)
            pool_events.checked_in(connection)
            return
        if entry is not None:
            if entry[3]:
                CHECKOUTS.checked_in(connection)
            entry[0].metrics.used(_perf_counter() - entry[1])
    except Exception as failure:
        FAILURES.report("redis pool checkin", failure)


def _get_connection(wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    state = getattr(pool, STATE_ATTRIBUTE, None)
    if state is None or state.metrics is None or state.pool_ref() is not pool:
        state = tracked_state(pool)
        if state is None:
            return wrapped(*args, **kwargs)
    try:
        used, idle = state.counts(pool)
        before = used + idle
    except Exception:
        before = -1
    pending = state.pending
    if pending is not None:
        pending.append(None)  # a pending request (deque: atomic, no lock)
    started = _perf_counter()
    try:
        connection = wrapped(*args, **kwargs)
    except Exception as error:
        _failed(state, pool, started, error)
        raise
    finally:
        if pending is not None:
            try:  # noqa: SIM105 - hot path: no context manager object per call
                pending.pop()
            except IndexError:  # unbalanced (cannot happen): never below zero
                pass
    _checked_out(state, pool, connection, started, before)
    return connection


def _release(wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    connection = args[0] if args else kwargs.get("connection")
    if connection is not None:
        _released(connection)
    return wrapped(*args, **kwargs)


async def _async_get_connection(
    wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    state = getattr(pool, STATE_ATTRIBUTE, None)
    if state is None or state.metrics is None or state.pool_ref() is not pool:
        state = tracked_state(pool)
        if state is None:
            return await wrapped(*args, **kwargs)
    try:
        used, idle = state.counts(pool)
        before = used + idle
    except Exception:
        before = -1
    pending = state.pending
    if pending is not None:
        pending.append(None)
    started = _perf_counter()
    try:
        connection = await wrapped(*args, **kwargs)
    except Exception as error:
        _failed(state, pool, started, error)
        raise
    finally:
        if pending is not None:
            try:  # noqa: SIM105 - hot path: no context manager object per call
                pending.pop()
            except IndexError:  # unbalanced (cannot happen): never below zero
                pass
    _checked_out(state, pool, connection, started, before)
    return connection


async def _async_release(
    wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    connection = args[0] if args else kwargs.get("connection")
    if connection is not None:
        _released(connection)
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
