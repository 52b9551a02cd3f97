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

from otel_db.enrichers.db_errors import record_error_facts
from otel_db.explain.slow_select import SlowSelectExplainer
from otel_db.instrumentation import statement_results
from otel_db.instrumentation.parameter_capture import capture_statement_parameters
from otel_db.metrics import operation_duration
from otel_db.metrics.export_state import metrics_exported
from otel_db.settings import Settings
from otel_db.sqlcommenter import append_traceparent
from otel_db.transactions.wiring import sqlalchemy_start_hooks

#: Called right after the statement span started: (span, sqlalchemy_connection,
#: execution_context_or_None, statement, parameters).
StartHook = Callable[[Span, Any, Any, str, Any], None]
#: Called when the statement failed, before the span ends: (span, exception).
ErrorHook = Callable[[Span, BaseException], None]
#: Called after the statement succeeded, before its span ends (the span's end time is
#: ``end_time_ns``, when the driver returned, so the hook's own work is not counted):
#: (span, sqlalchemy_connection, dbapi_cursor, execution_context_or_None, statement,
#: parameters, end_time_ns).
EndHook = Callable[[Span, Any, Any, Any, str, Any, int], None]
#: May return a new statement to execute (e.g. with a SQL comment appended):
#: (span, sqlalchemy_connection, statement, parameters) -> statement.
StatementRewriter = Callable[[Span, Any, str, Any], str]
#: The span a statement starts under instead of the current one, or None for the
#: current one: (sqlalchemy_connection) -> span. A transaction's span is never made
#: current for the transaction's whole life (nothing could detach it when the
#: application drops the connection); its statements are started under it here.
ParentHook = Callable[[Any], Span | None]


@dataclass(frozen=True)
class StatementHooks:
    on_start: tuple[StartHook, ...] = ()
    on_error: tuple[ErrorHook, ...] = ()
    rewriters: tuple[StatementRewriter, ...] = ()
    on_end: tuple[EndHook, ...] = ()
    parent: ParentHook | None = None


@dataclass
class _HookList:
    on_start: list[StartHook] = field(default_factory=list)
    on_error: list[ErrorHook] = field(default_factory=list)
    rewriters: list[StatementRewriter] = field(default_factory=list)
    on_end: list[EndHook] = field(default_factory=list)
    parent: ParentHook | None = None

    def freeze(self) -> StatementHooks:
        return StatementHooks(
            tuple(self.on_start),
            tuple(self.on_error),
            tuple(self.rewriters),
            tuple(self.on_end),
            self.parent,
        )


def default_hooks(settings: Settings) -> StatementHooks:
    """The hooks the settings ask for; each feature module adds its own."""
    hooks = _HookList()
    hooks.on_error.append(record_error_facts)  # error.type, status code, category (issue 4)
    if settings.capture_parameters:
        hooks.on_start.append(capture_statement_parameters)  # db.query.parameter.* (issue 4)
    if settings.sqlcommenter:
        hooks.rewriters.append(append_traceparent)  # traceparent comment (issue 4)
    if settings.explain_slow_queries:
        hooks.on_end.append(SlowSelectExplainer(settings.slow_query_threshold_ms))  # issue 4
    hooks.on_start.extend(sqlalchemy_start_hooks(settings))  # pool + transaction (issue 3)
    if settings.transaction_spans:
        from otel_db.transactions.sqlalchemy_transactions import install

        hooks.parent = install().statement_parent  # statements under their transaction
    if metrics_exported():  # (traces only: no metric work per statement, issue 19)
        hooks.on_end.append(operation_duration.on_statement_end)  # duration metric (issue 3)
        hooks.on_error.append(operation_duration.on_statement_error)  # (issue 3)
    hooks.on_end.append(statement_results.on_statement_end)  # returned rows (issue 18)
    return hooks.freeze()
