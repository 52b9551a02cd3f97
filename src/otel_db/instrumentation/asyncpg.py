"""asyncpg: contrib's statement spans, plus returned rows, batch sizes and EXPLAIN.

contrib wraps ``Connection.execute``/``executemany``/``fetch``/``fetchval``/``fetchrow``
(and ``PreparedStatement``'s ``fetch``/``fetchrow``/``fetchval``/``executemany``) and
starts its span inside that wrapper. otel_db wraps the same public methods first,
so contrib's wrapper ends up around otel_db's: otel_db's code runs with contrib's span
current, after the statement returned and before the span ends, without reaching into
contrib. What is known without fetching anything more than the application did:

- ``fetch``: the rows of the list it returns; ``fetchrow``: 1 or 0; ``fetchval``: 1 when
  it returned a value (``None`` is either no row or a NULL, so nothing then);
  ``execute`` of a single SELECT: the count in its ``SELECT n`` status.
- ``executemany``: ``db.operation.batch.size``, the length of its argument list or tuple
  (an iterator is never consumed).
- With ``OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES``: a slow single SELECT's plan (the
  ``Connection`` methods only), see :mod:`otel_db.explain.raw_statements`.
"""

from __future__ import annotations

import time
from typing import Any, Final

import wrapt
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import Span, get_current_span

from otel_db import attributes as attr
from otel_db.explain.raw_statements import RawStatementExplainer, raw_explainer
from otel_db.instrumentation.statement_results import batch_size
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.settings import current_settings
from otel_db.sql.analysis import analyze_statement

_ROW_METHODS: Final = ("execute", "fetch", "fetchrow", "fetchval")
_METHODS: Final = (*_ROW_METHODS, "executemany")
_PREPARED_METHODS: Final = ("fetch", "fetchrow", "fetchval", "executemany")
#: The instrumentation scope of contrib's asyncpg spans (its tracer's name).
_CONTRIB_SCOPE: Final = "opentelemetry.instrumentation.asyncpg"


def returned_rows(method: str, statement: object, result: Any) -> int | None:
    """The rows ``method`` returned, from its result alone; None when not known."""
    if method == "fetch":
        return len(result) if isinstance(result, list) else None
    if method == "fetchrow":
        return 0 if result is None else 1
    if method == "fetchval":
        return None if result is None else 1
    # execute: the status of the last command, e.g. "SELECT 3"; CREATE TABLE AS and
    # SELECT INTO report "SELECT n" too, for the rows they stored, not returned.
    if not isinstance(result, str) or not result.startswith("SELECT "):
        return None
    count = result[7:]
    if not count.isdigit() or not isinstance(statement, str):
        return None
    shape = analyze_statement(statement, "postgresql")
    if shape.operation != "SELECT" or " into " in shape.sanitized_text.lower():
        return None
    return int(count)


def _wrapper(method: str, prepared: bool = False) -> Any:
    """``Connection.<method>``'s wrapper, or ``PreparedStatement.<method>``'s (whose
    arguments come without the statement; they get rows and batch sizes, no plan)."""
    many = method == "executemany"
    rows_at = 0 if prepared else 1  # executemany's argument list

    async def run(wrapped: Any, connection: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        if not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        span = get_current_span()  # contrib's statement span
        if not span.is_recording() or not _contribs(span):
            return await wrapped(*args, **kwargs)
        if many:
            _record_batch(span, args[rows_at] if len(args) > rows_at else kwargs.get("args"))
            return await wrapped(*args, **kwargs)
        explainer = raw_explainer(current_settings())
        explain = explainer.enabled and not prepared
        start = time.perf_counter_ns() if explain else 0
        result = await wrapped(*args, **kwargs)
        try:
            statement = None if prepared else args[0] if args else kwargs.get("query")
            rows = returned_rows(method, statement, result)
            if rows is not None:
                DEFERRED.add(span, {attr.DB_RESPONSE_RETURNED_ROWS: rows})
            if explain:
                await _explain(explainer, span, connection, statement, args, start)
        except Exception as error:
            FAILURES.report("asyncpg returned rows / explain", error)
        return result

    return run


def _contribs(span: Span) -> bool:
    """Whether ``span`` is contrib's asyncpg statement span: never the application's
    (were contrib ever to wrap elsewhere, otel_db's wrapper would run outside its span)."""
    scope = getattr(span, "instrumentation_scope", None)
    return getattr(scope, "name", None) == _CONTRIB_SCOPE


def _record_batch(span: Span, rows: Any) -> None:
    try:
        size = batch_size(rows)
        if size is not None:
            DEFERRED.add(span, {attr.DB_OPERATION_BATCH_SIZE: size})
    except Exception as error:
        FAILURES.report("asyncpg executemany batch size", error)


async def _explain(
    explainer: RawStatementExplainer,
    span: Span,
    connection: Any,
    statement: object,
    args: tuple[Any, ...],
    start: int,
) -> None:
    if explainer.slow(time.perf_counter_ns() - start):
        await explainer.after_asyncpg_statement(span, connection, statement, args[1:])


class AsyncpgStatementInstrumentor(AsyncPGInstrumentor):
    """contrib's asyncpg spans, with returned rows, batch sizes and EXPLAIN."""

    _instance = None  # (BaseInstrumentor keeps one instance per class; not contrib's)

    def _instrument(self, **kwargs: Any) -> None:
        import asyncpg.prepared_stmt

        for method in _METHODS:
            wrapt.wrap_function_wrapper(
                "asyncpg.connection", f"Connection.{method}", _wrapper(method)
            )
        for method in _PREPARED_METHODS:
            if hasattr(asyncpg.prepared_stmt.PreparedStatement, method):
                wrapt.wrap_function_wrapper(
                    "asyncpg.prepared_stmt", f"PreparedStatement.{method}", _wrapper(method, True)
                )
        super()._instrument(**kwargs)  # contrib's wrappers go around otel_db's

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        import asyncpg.connection
        import asyncpg.prepared_stmt

        for method in _METHODS:
            unwrap(asyncpg.connection.Connection, method)
        for method in _PREPARED_METHODS:
            if hasattr(asyncpg.prepared_stmt.PreparedStatement, method):
                unwrap(asyncpg.prepared_stmt.PreparedStatement, method)


__all__ = ["AsyncpgStatementInstrumentor", "returned_rows"]
