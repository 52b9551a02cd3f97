"""``db.response.returned_rows`` and ``db.operation.batch.size`` on statement spans.

Rows are only what the driver already knows when the statement returns: a DB-API
cursor's ``rowcount`` for a statement that returns rows (``description`` set), when the
driver has the whole result (psycopg2, pg8000, pymysql's buffered cursors, buffered
mysql-connector cursors). Nothing is fetched: a server-side or unbuffered cursor
(``rowcount`` -1) and sqlite3 (which counts rows only as they are fetched) get no
attribute. The batch size is the length of an ``executemany`` parameter list or tuple
(an iterator is never consumed), when it holds two or more rows.

The raw drivers get them through contrib's ``CursorTracer.traced_execution`` (every
contrib DB-API instrumentation runs its statements there): the statement method it is
handed is wrapped, so the attributes are set while contrib's span is the current one.
SQLAlchemy statements get them through a statement hook (:func:`on_statement_end`).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any, Final

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, get_current_span

from otel_db import attributes as attr
from otel_db.explain.raw_statements import raw_explainer
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.settings import current_settings

DB_RESPONSE_RETURNED_ROWS: Final = attr.DB_RESPONSE_RETURNED_ROWS
# Unbuffered MySQL cursors report 2**64 - 1 ("unknown") as an unsigned count.
_MAX_ROWCOUNT: Final = 2**62


def returned_rows(cursor: Any) -> int | None:
    """The rows ``cursor``'s last statement returned, when the driver knows; else None."""
    try:
        if getattr(cursor, "description", None) is None:
            return None  # not a row-returning statement (rowcount is "affected" then)
        rowcount = getattr(cursor, "rowcount", None)
    except Exception:
        return None
    if type(rowcount) is int and 0 <= rowcount < _MAX_ROWCOUNT:
        return rowcount
    return None


def batch_size(rows: Any) -> int | None:
    """The length of an ``executemany`` parameter sequence of two or more rows."""
    if isinstance(rows, (list, tuple)) and len(rows) > 1:
        return len(rows)
    return None


def on_statement_end(
    span: Span,
    connection: Any,
    cursor: Any,
    context: Any,
    statement: str,
    parameters: Any,
    end_time_ns: int,
) -> None:
    """SQLAlchemy ``on_end`` statement hook: the rows its DB-API cursor knows of."""
    if getattr(context, "executemany", False):
        return
    rows = returned_rows(cursor)
    if rows is not None:
        span.set_attribute(DB_RESPONSE_RETURNED_ROWS, rows)


def _reporting(query_method: Any, cursor: Any) -> Any:
    many = getattr(query_method, "__name__", "") == "executemany"
    explainer = raw_explainer(current_settings())
    explain = explainer.enabled and not many

    def run(*args: Any, **kwargs: Any) -> Any:
        span = get_current_span()  # contrib's statement span
        recording = span.is_recording()
        if recording and many:
            try:
                size = batch_size(args[1] if len(args) > 1 else None)
                if size is not None:
                    DEFERRED.add(span, {attr.DB_OPERATION_BATCH_SIZE: size})
            except Exception as error:
                FAILURES.report("executemany batch size", error)
        start = time.perf_counter_ns() if explain else 0
        result = query_method(*args, **kwargs)
        if recording and not many:
            try:
                rows = returned_rows(cursor)
                if rows is not None:
                    # Written when the span ends (a live span's lock and validation
                    # cost more than the rest of this).
                    DEFERRED.add(span, {DB_RESPONSE_RETURNED_ROWS: rows})
                if explain:  # (off by default) a slow SELECT's plan, see explain/
                    took = time.perf_counter_ns() - start
                    explainer.after_statement(span, cursor, args, kwargs, took)
            except Exception as error:
                FAILURES.report("returned rows / explain", error)
        return result

    return run


def _traced_execution(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    # Suppressed (SQLAlchemy's span is the statement's): contrib runs the statement
    # as it is, and so does this.
    if len(args) < 2 or not is_instrumentation_enabled():
        return wrapped(*args, **kwargs)
    cursor, query_method, *rest = args
    return wrapped(cursor, _reporting(query_method, cursor), *rest, **kwargs)


class StatementResultInstrumentor(BaseInstrumentor):
    """Adds returned rows and batch sizes to contrib's DB-API statement spans."""

    _wrapped = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        from opentelemetry.instrumentation.dbapi import CursorTracer

        if not StatementResultInstrumentor._wrapped:
            wrapt.wrap_function_wrapper(CursorTracer, "traced_execution", _traced_execution)
            StatementResultInstrumentor._wrapped = True

    def _uninstrument(self, **kwargs: Any) -> None:
        from opentelemetry.instrumentation.dbapi import CursorTracer

        current = CursorTracer.__dict__.get("traced_execution")
        if StatementResultInstrumentor._wrapped and hasattr(current, "__wrapped__"):
            CursorTracer.traced_execution = current.__wrapped__  # type: ignore[method-assign]
            StatementResultInstrumentor._wrapped = False
