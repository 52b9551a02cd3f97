"""Pool facts for SQLAlchemy statements: ``QueuePool`` and the async engine's pool.

The checkout is timed by wrapping ``Pool.connect`` (the one entry point of every
checkout, in SQLAlchemy 1.4 to 2.1, sync and async). What otel_db knows of a checkout
is kept beside the pool's objects, never in them: the application's ``info`` dicts
(``Connection.info``, the pool entry's) stay exactly as without otel_db. Per checkout
it lives in a map keyed by the checked-out connection proxy (gone with it) and the pool
entry (for the ``checkin`` event, which is given the entry). Counts are read from the
pool at statement start (``checkedout()``, ``checkedin()``, ``size()``,
``_max_overflow``). Whether a checkout opened a new connection (the ``create_time``
metric) is the pool's own ``connect`` event, which SQLAlchemy fires for the entry before
that checkout's ``checkout`` event, not a comparison of pool sizes.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections import deque
from typing import Any

from opentelemetry.trace import Span

from otel_db import attributes as attr
from otel_db.by_id import IdTable, remember
from otel_db.instrumentation.sqlalchemy_engine_facts import facts_for
from otel_db.metrics import pool_events
from otel_db.metrics.instruments import recorders
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.pools.snapshot import POOL_NAMES, record_exhaustion, server_name


class _Checkout:
    """One checkout: its wait, when it began, and the pool's name once known."""

    __slots__ = (
        "__weakref__",
        "checked_out_at",
        "created",
        "name",
        "proxy_ref",
        "unrecorded",
        "wait_ms",
    )

    def __init__(self) -> None:
        self.proxy_ref: Any = None
        #: The pool opened a new DB-API connection for this checkout (its ``connect`` event).
        self.created = False
        self.wait_ms: float | None = None
        #: (wait_s, created) the metrics record once the pool is named (first statement).
        self.unrecorded: tuple[float, bool] | None = None
        self.checked_out_at: float | None = None
        self.name: str | None = None


#: id(connection proxy) -> its checkout. A plain dict read on every statement (a weak
#: dictionary lookup makes a weak reference per call); each proxy's weak reference
#: callback removes its entry, and the map is bounded anyway.
_BY_PROXY: dict[int, _Checkout] = {}
_MAX_CHECKOUTS = 100_000
#: pool entry -> its current checkout, for the ``checkin`` event.
_BY_ENTRY: weakref.WeakKeyDictionary[Any, _Checkout] = weakref.WeakKeyDictionary()
#: The checkout the ``checkout`` event just saw on this thread, for ``_timed_connect``.
_LAST = threading.local()
#: id(pool entry) -> weak reference to it: entries the ``connect`` event gave a new
#: connection whose ``checkout`` event has not come yet. Keyed by entry, not by thread:
#: on an async engine another task may check out between the two events.
_CONNECTED: dict[int, weakref.ref[Any]] = {}
_MAX_CONNECTING = 10_000

# Per pool: its name, size and maximum (see _static_facts); gone with the pool.
_STATIC: weakref.WeakKeyDictionary[Any, _PoolFacts] = weakref.WeakKeyDictionary()
_FACTS_BY_ID: IdTable[_PoolFacts] = {}
#: id(pool) -> (weak reference to it, its pending-request counter), for ``_timed_connect``.
_PENDING_BY_ID: IdTable[deque[None] | None] = {}
_MAX_POOLS = 10_000

_installed = False
_install_lock = threading.Lock()


def _timed_connect(wrapped: Any, pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    entry = _PENDING_BY_ID.get(id(pool))
    counter = entry[1] if entry is not None and entry[0]() is pool else _pending_counter(pool)
    started = time.perf_counter()
    try:
        # pool_events.pending(pool), written out: this wraps every checkout.
        if counter is not None:
            counter.append(None)
        try:
            fairy = wrapped(*args, **kwargs)
        finally:
            if counter is not None:
                try:  # noqa: SIM105 - hot path: no context manager object per call
                    counter.pop()
                except IndexError:  # unbalanced: never below zero
                    pass
    except Exception as error:
        _report_timeout(pool, started, error)
        raise
    try:
        now = time.perf_counter()
        checkout = getattr(_LAST, "checkout", None)
        _LAST.checkout = None
        if checkout is not None and _proxy_of(checkout) is fairy:
            checkout.wait_ms = (now - started) * 1000.0
            checkout.unrecorded = (now - started, checkout.created)
            checkout.checked_out_at = now
    except Exception as failure:
        FAILURES.report("SQLAlchemy checkout timing", failure)
    return fairy


def _pending_counter(pool: Any) -> deque[None] | None:
    """``pool``'s pending-request counter, kept by the pool's id after the first time (a
    ``WeakKeyDictionary`` lookup makes a weak reference per call)."""
    try:
        return remember(_PENDING_BY_ID, pool, pool_events.pending_counter(pool), _MAX_POOLS)
    except Exception as failure:
        FAILURES.report("SQLAlchemy pending checkouts", failure)
        return None


def _proxy_of(checkout: _Checkout) -> Any:
    ref = checkout.proxy_ref
    return ref() if ref is not None else None


def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool ``checkout`` event: a new checkout of ``record`` through ``proxy``."""
    try:
        checkout = _Checkout()
        key = id(proxy)
        checkout.proxy_ref = weakref.ref(proxy, lambda _ref: _forget(key, checkout))
        if len(_BY_PROXY) >= _MAX_CHECKOUTS:
            _BY_PROXY.clear()  # bounded; only pool attributes are lost, never a statement
        _BY_PROXY[key] = checkout
        if record is not None:
            _BY_ENTRY[record] = checkout
            if _CONNECTED:
                opened = _CONNECTED.pop(id(record), None)
                checkout.created = opened is not None and opened() is record
        _LAST.checkout = checkout
    except Exception as failure:
        FAILURES.report("SQLAlchemy checkout tracking", failure)


def _connected(dbapi_connection: Any, record: Any) -> None:
    """Pool ``connect`` event: ``record`` got a new DB-API connection (a new pool entry, or
    an entry reconnecting after invalidation or recycling), for the checkout under way."""
    try:
        if len(_CONNECTED) >= _MAX_CONNECTING:
            _CONNECTED.clear()  # bounded; at worst a checkout's create time goes unrecorded
        _CONNECTED[id(record)] = weakref.ref(record)
    except Exception as failure:
        FAILURES.report("SQLAlchemy connect tracking", failure)


def _forget(key: int, checkout: _Checkout) -> None:
    if _BY_PROXY.get(key) is checkout:
        _BY_PROXY.pop(key, None)


def checkout_of(sa_connection: Any) -> _Checkout | None:
    """The checkout a SQLAlchemy ``Connection`` runs on, if otel_db saw it."""
    # No identity check: a proxy's entry leaves with the proxy (its weak reference's
    # callback runs before the id can be reused).
    return _BY_PROXY.get(id(sa_connection.connection))


def _report_timeout(pool: Any, started: float, error: BaseException) -> None:
    try:
        from sqlalchemy.exc import TimeoutError as PoolTimeout

        if isinstance(error, PoolTimeout):
            name = POOL_NAMES.name(pool, _fallback_name(pool))
            pool_events.timed_out(name)
            record_exhaustion(name, (time.perf_counter() - started) * 1000.0, error)
    except Exception as failure:
        FAILURES.report("SQLAlchemy pool timeout recording", failure)


def _checked_in(dbapi_connection: Any, record: Any) -> None:
    """Pool ``checkin`` event: the connection's use time ends."""
    try:
        checkout = _BY_ENTRY.pop(record, None) if record is not None else None
        if checkout is None:
            return
        started, checkout.checked_out_at = checkout.checked_out_at, None
        name = checkout.name
        if started is not None and name is not None and recorders():
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

        event.listen(Pool, "connect", _connected)
        event.listen(Pool, "checkout", _checked_out)
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
    """:func:`_static_facts`, found by the pool's id after the first time (a
    ``WeakKeyDictionary`` lookup makes a weak reference per call); nothing is set on the
    pool itself."""
    entry = _FACTS_BY_ID.get(id(pool))
    if entry is not None and entry[0]() is pool:
        return entry[1]
    return remember(_FACTS_BY_ID, pool, _static_facts(engine, pool), _MAX_POOLS)


def _first_statement_of_checkout(checkout: _Checkout, name: str, pool: Any) -> None:
    unrecorded, checkout.unrecorded = checkout.unrecorded, None
    if unrecorded is not None:  # the pool has a name now: record the checkout
        checkout.name = name
        if recorders():  # no metrics exported: no metric work (the next checkout looks again)
            pool_events.checked_out(name, None, unrecorded[0], unrecorded[1], track_use=False)
            pool_events.observe(pool, _read_for_metrics)


@functools.cache
def _queue_pool() -> type:
    from sqlalchemy.pool import QueuePool

    return QueuePool


def statement_hook(span: Span, sa_connection: Any, *_: Any) -> None:
    """``StatementHooks.on_start``: the pool attributes of the statement span.

    What ``PoolSnapshot.attributes()`` gives, written out: this runs for every statement,
    and the fixed part of the dict is copied from the pool's template. The pool's facts
    and the checkout are looked up inline (:func:`_pool_facts`, :func:`checkout_of`).
    """
    if not span.is_recording():
        return
    engine = sa_connection.engine
    pool = engine.pool
    entry = _FACTS_BY_ID.get(id(pool))
    if entry is not None and entry[0]() is pool:
        facts = entry[1]  # only a QueuePool has facts
    elif isinstance(pool, _queue_pool()):
        facts = _pool_facts(engine, pool)
    else:
        return
    checkout = _BY_PROXY.get(id(sa_connection.connection))
    if checkout is not None and checkout.unrecorded is not None:
        _first_statement_of_checkout(checkout, facts.name, pool)
    # QueuePool.checkedout() is maxsize - qsize + overflow; checkedin() is qsize.
    idle = pool.checkedin()
    used = pool.checkedout()
    attributes = facts.template.copy()
    attributes[attr.POOL_USED] = used
    attributes[attr.POOL_IDLE] = idle
    maximum = facts.maximum
    if maximum is not None and maximum > 0:
        attributes[attr.POOL_UTILIZATION] = min(1.0, used / maximum)
    wait = checkout.wait_ms if checkout is not None else None
    if wait is not None:
        attributes[attr.POOL_WAIT_MS] = wait
    DEFERRED.hand_over(span, attributes)


def sqlalchemy_pool_hooks() -> tuple[Any, ...]:
    install()
    return (statement_hook,)
