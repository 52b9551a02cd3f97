"""``db.client.operation.duration`` for otel_db's own SQLAlchemy statement spans.

contrib's DB-API instrumentations (psycopg2, sqlite3, pymysql) record it themselves under
the stable database opt-in, but not while SQLAlchemy runs the statement (driver-level
instrumentation is suppressed then), so each statement is recorded exactly once: here
for SQLAlchemy, by contrib for raw DB-API use, by ``instrumentation/redis.py`` for Redis.
"""

from __future__ import annotations

import time
from typing import Any, Final

from opentelemetry.trace import Span

from otel_db import attributes as attr
from otel_db.metrics.instruments import recorders
from otel_db.pipeline.containment import FAILURES

_KEYS = (
    attr.DB_SYSTEM_NAME,
    attr.DB_NAMESPACE,
    attr.DB_OPERATION_NAME,
    attr.SERVER_ADDRESS,
    attr.SERVER_PORT,
)


def _readable_attributes(span: Span) -> Any:
    """The live span's attributes, read without the SDK's locked mapping when possible.

    The SDK keeps them in ``BoundedAttributes`` whose every ``in`` and lookup takes a
    lock in Python; the statement's own thread is the only writer here, so reading the
    plain dict inside is safe. Anything else falls back to the public view.
    """
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if type(inner) is dict:
        return inner
    return getattr(span, "attributes", None) or {}


#: Distinct successful-statement attribute sets whose dict is kept (built once, never
#: mutated) so the shared-attributes histogram can skip the SDK's per-call copies.
MAX_SHARED_ATTRIBUTE_SETS: Final = 1024
_shared_attributes: dict[tuple[Any, ...], dict[str, Any]] = {}


def _success_attributes(span_attributes: Any) -> dict[str, Any] | None:
    """The metric attributes of a successful statement: one dict per distinct set (None
    when a value cannot be a dictionary key)."""
    get = span_attributes.get
    key = tuple(get(name) for name in _KEYS)
    try:
        found = _shared_attributes.get(key)
    except TypeError:
        return None
    if found is None:
        found = {name: value for name, value in zip(_KEYS, key, strict=True) if value is not None}
        if len(_shared_attributes) >= MAX_SHARED_ATTRIBUTE_SETS:
            _shared_attributes.clear()  # a workload past this many sets is not repeating
        _shared_attributes[key] = found
    return found


def _record(span: Span, end_time_ns: int, error: BaseException | None) -> None:
    if not recorders():
        return  # the process exports no metrics
    try:
        start = getattr(span, "start_time", None)
        if not start or not span.is_recording():
            return
        span_attributes = _readable_attributes(span)
        seconds = max(0, end_time_ns - start) / 1e9
        shared = _success_attributes(span_attributes) if error is None else None
        if shared is not None:
            for recorder in recorders():
                recorder.operation_duration_shared.record(seconds, shared)
            return
        attributes = {key: span_attributes[key] for key in _KEYS if key in span_attributes}
        if error is not None:
            attributes[attr.ERROR_TYPE] = type(error).__qualname__
        for recorder in recorders():
            recorder.operation_duration.record(seconds, attributes)
    except Exception as failure:
        FAILURES.report("operation duration metric", failure)


def on_statement_end(
    span: Span, _conn: Any, _cursor: Any, _ctx: Any, _stmt: Any, _params: Any, end_time_ns: int
) -> None:
    """``StatementHooks.on_end``."""
    _record(span, end_time_ns, None)


def on_statement_error(span: Span, error: BaseException) -> None:
    """``StatementHooks.on_error``."""
    _record(span, time.time_ns(), error)
