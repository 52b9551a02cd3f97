"""EXPLAIN for slow SELECTs run on raw psycopg2 and asyncpg connections (not through
SQLAlchemy).

The same rule as :mod:`otel_db.explain.slow_select` (off by default; a single SELECT,
not ``executemany``, not ``SELECT ... INTO``, not a named/server-side cursor; at most one
plan per fingerprint a minute; EXPLAIN only, never ANALYZE, bounded on the server and
undone with a savepoint or rollback, see :mod:`otel_db.explain.runners`). It runs from
:mod:`otel_db.instrumentation.statement_results`, inside contrib's statement span right
after the statement returned, with instrumentation suppressed (the EXPLAIN makes no span
of its own and is no part of any transaction otel_db tracks). Unlike SQLAlchemy's, the
span cannot be ended before the EXPLAIN: the statement span, and contrib's duration
metric for it, include the EXPLAIN's round trips (a few milliseconds, at most 500 ms on
the server), once per statement shape a minute.

asyncpg's statements (``fetch``, ``fetchrow``, ``fetchval``, ``execute``) get the same
from :mod:`otel_db.instrumentation.asyncpg`: awaited on the same connection right after
the statement returned, inside contrib's span, so the event loop runs other tasks
meanwhile and only the task that ran the slow SELECT waits for its plan.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Span

from otel_db import attributes as attr
from otel_db.explain.plan_text import sanitize_plan
from otel_db.explain.runners import explain_asyncpg, explain_postgresql
from otel_db.explain.slow_select import SlowSelectExplainer
from otel_db.settings import Settings
from otel_db.sql.analysis import analyze_statement

_PSYCOPG2: Final = "psycopg2"


class RawStatementExplainer:
    """Called after a raw driver statement returned, with contrib's span current."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.explain_slow_queries
        self._threshold_ns = int(settings.slow_query_threshold_ms * 1_000_000)
        self._rate = SlowSelectExplainer(settings.slow_query_threshold_ms)
        self._lock = threading.Lock()

    def after_statement(
        self, span: Span, cursor: Any, args: tuple[Any, ...], kwargs: dict[str, Any], took_ns: int
    ) -> None:
        if not self.enabled or took_ns < self._threshold_ns:
            return
        if not (type(cursor).__module__ or "").startswith(_PSYCOPG2) and not any(
            (c.__module__ or "").startswith(_PSYCOPG2) for c in type(cursor).__mro__
        ):
            return  # only psycopg2's transaction status makes the EXPLAIN safe
        if getattr(cursor, "name", None):
            return  # a server-side cursor: its rows are still on the server
        statement = args[0] if args else kwargs.get("query")
        if not self.due_select(statement):
            return
        parameters = args[1] if len(args) > 1 else kwargs.get("vars")
        with suppress_instrumentation():
            plan = explain_postgresql(cursor.connection, statement, parameters)
        if plan:
            span.set_attribute(attr.QUERY_EXPLAIN, sanitize_plan(plan))

    def slow(self, took_ns: int) -> bool:
        return self.enabled and took_ns >= self._threshold_ns

    def due_select(self, statement: object) -> bool:
        """Whether ``statement`` is a single SELECT (not ``SELECT ... INTO``) whose
        fingerprint got no plan in the last minute; if so, it counts as planned now."""
        if not isinstance(statement, str):
            return False
        shape = analyze_statement(statement)
        if shape.operation != "SELECT" or " into " in shape.sanitized_text.lower():
            return False
        return self._rate._due(shape.fingerprint)

    async def after_asyncpg_statement(
        self, span: Span, connection: Any, statement: object, arguments: tuple[Any, ...]
    ) -> None:
        """A slow asyncpg SELECT returned on ``connection``: its plan, on ``span``."""
        if not self.due_select(statement):
            return
        with suppress_instrumentation():
            plan = await explain_asyncpg(connection, statement, arguments)  # type: ignore[arg-type]
        if plan:
            span.set_attribute(attr.QUERY_EXPLAIN, sanitize_plan(plan))


_explainer: RawStatementExplainer | None = None
_explainer_lock = threading.Lock()


def raw_explainer(settings: Settings) -> RawStatementExplainer:
    """The process's explainer, built once from the settings in force."""
    global _explainer
    found = _explainer
    if found is None:
        with _explainer_lock:
            if _explainer is None:
                _explainer = RawStatementExplainer(settings)
            found = _explainer
    return found
