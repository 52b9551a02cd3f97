"""A redis-py command's span as contrib's redis instrumentation makes it, for less.

contrib's wrapper, per command: formats the sanitized command text (``GET ?``), enters a
generator context manager, and writes seven attributes one call at a time through the
SDK's locked and validated setters, reading the pool's connection facts again each
time. All of that depends only on the pool, the command name and the number of
arguments. :func:`command_template` asks contrib's own wrapper once per (pool, command,
argument count), with a stand-in tracer that records the span it would make, and
keeps the name and attributes on the pool's otel_db state; per command the span is
started with them and made current.

Used for ``Redis.execute_command`` on the verified contrib versions (the
``contrib.redis`` shortcut: contrib's ``_traced_execute_factory`` and its instrumentor's
``_get_tracer``), without contrib's request or response hooks, for commands named by a
``str`` other than ``FT.SEARCH``/``FT.CREATE`` (whose spans contrib also fills from the
arguments or the response). Anything else runs through contrib's wrapper.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

from otel_db.pools import redis_pool

#: Commands whose span contrib fills from the arguments or the response.
_CONTRIB_ONLY: Final = frozenset({"FT.SEARCH", "FT.CREATE"})
#: (command, argument count) pairs kept per pool.
MAX_TEMPLATES_PER_POOL: Final = 256


class _RecordingSpan:
    __slots__ = ("attributes", "name")

    def __init__(self, name: Any) -> None:
        self.name = name
        self.attributes: dict[str, Any] = {}

    def is_recording(self) -> bool:
        return True

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: Any) -> None:
        self.attributes.update(attributes)


class _RecordingTracer:
    """Stands in for contrib's tracer: keeps the one span contrib's wrapper makes."""

    def __init__(self) -> None:
        self.span: _RecordingSpan | None = None
        self.kind: Any = None

    @contextlib.contextmanager
    def start_as_current_span(self, name: Any, kind: Any = None, **_: Any) -> Iterator[Any]:
        self.span = _RecordingSpan(name)
        self.kind = kind
        yield self.span


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


def _derive(client: Any, args: tuple[Any, ...]) -> tuple[str, dict[str, Any]] | None:
    from opentelemetry.instrumentation import redis as contrib_redis
    from opentelemetry.trace import SpanKind

    recorder = _RecordingTracer()
    contrib_redis._traced_execute_factory(recorder, None, None)(_nothing, client, args, {})
    span = recorder.span
    if span is None or recorder.kind is not SpanKind.CLIENT or type(span.name) is not str:
        return None
    return span.name, span.attributes


def command_template(client: Any, args: tuple[Any, ...]) -> tuple[str, dict[str, Any]] | None:
    """(span name, attributes) of contrib's span for ``client.execute_command(*args)``,
    kept per pool; None where contrib's wrapper must make the span."""
    if not args:
        return None
    command = args[0]
    if type(command) is not str or command in _CONTRIB_ONLY:
        return None
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return None
    state = getattr(pool, redis_pool.STATE_ATTRIBUTE, None)
    if state is None or state.pool_ref() is not pool:
        state = redis_pool.pool_state(pool)
        if state is None:
            return None
    templates = state.command_spans
    key = (command, len(args))
    found = templates.get(key)
    if found is None:
        found = _derive(client, args)
        if found is None:
            return None
        if len(templates) >= MAX_TEMPLATES_PER_POOL:
            templates.clear()  # bounded; a repeating workload refills it at once
        templates[key] = found
    return found


__all__ = ["MAX_TEMPLATES_PER_POOL", "command_template"]
