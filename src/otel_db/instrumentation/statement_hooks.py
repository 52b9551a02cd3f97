"""Extension points of otel_db's own statement instrumentation.

Features that need the driver-level objects (the SQLAlchemy connection, the live span
before it ends, the exception object) register here instead of editing the listener.
Every hook runs inside the listener's containment: a failing hook is logged once and
the statement runs as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span

from otel_db.settings import Settings

#: Called right after the statement span started: (span, sqlalchemy_connection,
#: execution_context_or_None, statement, parameters).
StartHook = Callable[[Span, Any, Any, str, Any], None]
#: Called when the statement failed, before the span ends: (span, exception).
ErrorHook = Callable[[Span, BaseException], None]
#: May return a new statement to execute (e.g. with a SQL comment appended):
#: (span, sqlalchemy_connection, statement, parameters) -> statement.
StatementRewriter = Callable[[Span, Any, str, Any], str]


@dataclass(frozen=True)
class StatementHooks:
    on_start: tuple[StartHook, ...] = ()
    on_error: tuple[ErrorHook, ...] = ()
    rewriters: tuple[StatementRewriter, ...] = ()


@dataclass
class _HookList:
    on_start: list[StartHook] = field(default_factory=list)
    on_error: list[ErrorHook] = field(default_factory=list)
    rewriters: list[StatementRewriter] = field(default_factory=list)

    def freeze(self) -> StatementHooks:
        return StatementHooks(tuple(self.on_start), tuple(self.on_error), tuple(self.rewriters))


def default_hooks(settings: Settings) -> StatementHooks:
    """The hooks the settings ask for; each feature module adds its own."""
    hooks = _HookList()
    return hooks.freeze()
