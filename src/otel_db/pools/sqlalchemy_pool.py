"""Pool facts for SQLAlchemy statements: ``QueuePool`` and the async engine's pool.

The checkout is timed by wrapping ``Pool.connect`` (the one entry point of every
checkout, in SQLAlchemy 1.4 to 2.1, sync and async); the wait is kept in the pool
entry's ``info`` until the next checkout of that entry. Counts are read from the pool at
statement start (``checkedout()``, ``checkedin()``, ``size()``, ``_max_overflow``).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import weakref
from typing import Any

from opentelemetry.trace import Span

from otel_db import attributes as attr
from otel_db.instrumentation.sqlalchemy_engine_facts import facts_for
from otel_db.metrics import pool_events
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.pools.snapshot import POOL_NAMES, record_exhaustion, server_name

WAIT_KEY = "_otel_db_checkout_wait_ms"
#: Checkout facts the metrics record once the pool is named (at the first statement).
UNRECORDED_KEY = "_otel_db_checkout_unrecorded"
CHECKED_OUT_AT_KEY = "_otel_db_checked_out_at"
NAME_KEY = "_otel_db_pool_name"

# Per pool: its name, size and maximum (see _static_facts); gone with the pool.
_STATIC: weakref.WeakKeyDictionary[Any, _PoolFacts] = weakref.WeakKeyDictionary()
_FACTS_ATTRIBUTE = "_otel_db_pool_facts"

_installed = False
_install_lock = threading.Lock()


def _timed_connect(wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    before = _total(pool)
    started = time.perf_counter()
    try:
        with pool_events.pending(pool):
            fairy = wrapped(*args, **kwargs)
    except Exception as error:
        _report_timeout(pool, started, error)
        raise
    try:
        now = time.perf_counter()
        fairy.info[WAIT_KEY] = (now - started) * 1000.0
        fairy.info[UNRECORDED_KEY] = (now - started, 0 <= before < _total(pool))
        fairy.info[CHECKED_OUT_AT_KEY] = now
    except Exception as failure:
        FAILURES.report("SQLAlchemy checkout timing", failure)
    return fairy


def _report_timeout(pool: Any, started: float, error: BaseException) -> None:
    try:
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        if isinstance(error, PoolTimeout):
            name = POOL_NAMES.name(pool, _fallback_name(pool))
            pool_events.timed_out(name)
            record_exhaustion(name, (time.perf_counter() - started) * 1000.0, error)
    except Exception as failure:
        FAILURES.report("SQLAlchemy pool timeout recording", failure)


def _total(pool: Any) -> int:
    """Connections the pool holds now (-1: not a counting pool)."""
    from sqlalchemy.pool import QueuePool

    return pool.checkedin() + pool.checkedout() if isinstance(pool, QueuePool) else -1


def _checked_in(dbapi_connection: Any, record: Any) -> None:
    """Pool ``checkin`` event: the connection's use time ends."""
    try:
        info = record.info if record is not None else {}
        started = info.pop(CHECKED_OUT_AT_KEY, None)
        name = info.get(NAME_KEY)
        if started is not None and name is not None:
            pool_events.used_for(name, time.perf_counter() - started)
    except Exception as failure:
        FAILURES.report("SQLAlchemy checkin metrics", failure)


def _read_for_metrics(pool: Any) -> tuple[str, int, int, int | None, int | None] | None:
    name = POOL_NAMES.peek(pool)
    if name is None:
        return None
    size = pool.size()
    overflow = pool._max_overflow
    return (
        name,
        pool.checkedout(),
        pool.checkedin(),
        size + overflow if overflow >= 0 else None,
        size,
    )


def _fallback_name(pool: Any) -> str:
    # Used only when the pool times out before any statement named it.
    return f"{type(pool).__name__}-{id(pool):x}"


def install() -> None:
    """Time every SQLAlchemy checkout (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from wrapt import wrap_function_wrapper

        wrap_function_wrapper("sqlalchemy.pool.base", "Pool.connect", _timed_connect)
        from sqlalchemy import event
        from sqlalchemy.pool import Pool

        event.listen(Pool, "checkin", _checked_in)
        _installed = True


class _PoolFacts:
    """A ``QueuePool``'s fixed facts (name, size, max), read once for its whole life."""

    __slots__ = ("__weakref__", "maximum", "name", "size", "template")

    def __init__(self, name: str, size: int, maximum: int | None) -> None:
        self.name = name
        self.size = size
        self.maximum = maximum
        #: The attributes every statement on this pool carries (copied, never mutated).
        self.template: dict[str, Any] = {
            attr.DB_CLIENT_CONNECTION_POOL_NAME: name,
            attr.POOL_SIZE: size,
        }
        if maximum is not None and maximum > 0:
            self.template[attr.POOL_MAX] = maximum


def _static_facts(engine: Any, pool: Any) -> _PoolFacts:
    found = _STATIC.get(pool)
    if found is None:
        facts = facts_for(engine, None)
        name = POOL_NAMES.name(pool, server_name(facts.host, facts.port, facts.namespace))
        size = pool.size()
        max_overflow = pool._max_overflow
        found = _PoolFacts(name, size, size + max_overflow if max_overflow >= 0 else None)
        _STATIC[pool] = found
    return found


def _pool_facts(engine: Any, pool: Any) -> _PoolFacts:
    """:func:`_static_facts`, found through the pool's ``__dict__`` after the first time
    (a ``WeakKeyDictionary`` lookup makes a weak reference per call)."""
    found = getattr(pool, _FACTS_ATTRIBUTE, None)
    if type(found) is _PoolFacts:
        return found
    found = _static_facts(engine, pool)
    with contextlib.suppress(Exception):  # a pool class with __slots__: the dict only
        setattr(pool, _FACTS_ATTRIBUTE, found)
    return found


def _first_statement_of_checkout(info: Any, name: str, pool: Any) -> None:
    unrecorded = info.pop(UNRECORDED_KEY, None)
    if unrecorded is not None:  # the pool has a name now: record the checkout
        info[NAME_KEY] = name
        pool_events.checked_out(name, None, unrecorded[0], unrecorded[1], track_use=False)
        pool_events.observe(pool, _read_for_metrics)


@functools.cache
def _queue_pool() -> type:
    from sqlalchemy.pool import QueuePool

    return QueuePool


def statement_hook(span: Span, sa_connection: Any, *_: Any) -> None:
    """``StatementHooks.on_start``: the pool attributes of the statement span.

    What ``PoolSnapshot.attributes()`` gives, written out: this runs for every statement,
    and the fixed part of the dict is copied from the pool's template.
    """
    if not span.is_recording():
        return
    engine = sa_connection.engine
    pool = engine.pool
    if not isinstance(pool, _queue_pool()):
        return
    facts = _pool_facts(engine, pool)
    info = sa_connection.info
    if UNRECORDED_KEY in info:
        _first_statement_of_checkout(info, facts.name, pool)
    # QueuePool.checkedout() is maxsize - qsize + overflow; checkedin() is qsize.
    idle = pool.checkedin()
    used = pool.checkedout()
    attributes = facts.template.copy()
    attributes[attr.POOL_USED] = used
    attributes[attr.POOL_IDLE] = idle
    maximum = facts.maximum
    if maximum is not None and maximum > 0:
        attributes[attr.POOL_UTILIZATION] = min(1.0, used / maximum)
    wait = info.get(WAIT_KEY)
    if wait is not None:
        attributes[attr.POOL_WAIT_MS] = wait
    DEFERRED.add(span, attributes)


def sqlalchemy_pool_hooks() -> tuple[Any, ...]:
    install()
    return (statement_hook,)
