"""What a statement span says about the pool its connection came from."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr

POOL_EXHAUSTED_EVENT = "otel_db.pool.exhausted"


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The pool's counts, read from the pool itself at the moment a statement starts.

    Counts come from the pool's own bookkeeping, never from counting events: that is
    what keeps them exact across invalidated, detached, recycled and failed connections.
    """

    name: str
    size: int | None
    max: int | None
    used: int
    idle: int
    wait_ms: float | None

    def attributes(self) -> dict[str, AttributeValue]:
        """The span attributes; a value of the wrong type (a test's mocked pool, a pool
        class that keeps its counts differently) is left out, never handed to the SDK,
        which would warn about it."""
        out: dict[str, AttributeValue] = {}
        if isinstance(self.name, str):
            out[attr.DB_CLIENT_CONNECTION_POOL_NAME] = self.name
        size, used, idle = count_value(self.size), count_value(self.used), count_value(self.idle)
        if size is not None:
            out[attr.POOL_SIZE] = size
        if used is not None:
            out[attr.POOL_USED] = used
        if idle is not None:
            out[attr.POOL_IDLE] = idle
        maximum = count_value(self.max)
        if maximum is not None and maximum > 0:
            out[attr.POOL_MAX] = maximum
            if used is not None:
                out[attr.POOL_UTILIZATION] = min(1.0, used / maximum)
        wait_ms = number_value(self.wait_ms)
        if wait_ms is not None:
            out[attr.POOL_WAIT_MS] = wait_ms
        return out


def count_value(value: Any) -> int | None:
    """``value`` as an int attribute if it is a count (an int, not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    return None


def number_value(value: Any) -> float | None:
    """``value`` as a double attribute if it is a real number (not a bool), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def record_exhaustion(pool_name: str, waited_ms: float, error: BaseException) -> None:
    """Put a checkout that gave up on the application span that was waiting for it.

    The current span may be the transaction span of a connection the same code holds
    (a request that holds one connection and asks for another): the wait belongs to
    the span that was current when that transaction began. The event and the exception
    are recorded; the status is left to whoever owns the span, as for any exception:
    ERROR when the ``TimeoutError`` leaves the span, UNSET when the application handles
    it.
    """
    span = _waiting_span(trace.get_current_span())
    if not span.is_recording():
        return
    span.add_event(
        POOL_EXHAUSTED_EVENT,
        {attr.DB_CLIENT_CONNECTION_POOL_NAME: pool_name, attr.POOL_WAIT_MS: waited_ms},
    )
    span.record_exception(error)


class PoolNames:
    """A name per pool object, unique in the process: ``host:port/db``, then ``#2``..."""

    def __init__(self) -> None:
        self._names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def peek(self, pool: Any) -> str | None:
        """The pool's name if it has been given one."""
        try:
            return self._names.get(pool)
        except TypeError:
            return None

    def name(self, pool: Any, base: str) -> str:
        found = self._names.get(pool)
        if found is not None:
            return found
        with self._lock:
            found = self._names.get(pool)
            if found is None:
                # Bounded by the number of distinct bases (servers), not of pools.
                count = self._counts.get(base, 0) + 1
                if len(self._counts) < 10_000:
                    self._counts[base] = count
                found = base if count == 1 else f"{base}#{count}"
                self._names[pool] = found
            return found


POOL_NAMES = PoolNames()


def server_name(host: str | None, port: int | None, database: str | None) -> str:
    """The conventions' fallback pool name: ``server.address:server.port/db.namespace``."""
    if not host and not port:
        return database or "default"
    text = host or "localhost"
    if port:
        text = f"{text}:{port}"
    if database:
        text = f"{text}/{database}"
    return text


def _waiting_span(span: trace.Span) -> trace.Span:
    from otel_db.transactions.tracker import default_tracker

    tracker = default_tracker()
    for _ in range(8):  # transactions opened under other connections' transactions
        opened = tracker.opened_under(span)
        if opened is None or opened is span:
            break
        span = opened
    return span
