"""psycopg2 with pool and transaction facts: contrib's instrumentor, extended.

contrib's statement spans are kept as they are. Around them otel_db adds: the pool a
connection came from (``psycopg2.pool`` checkouts are timed), the transaction the driver
opens when autocommit is off (a span from the first statement to ``commit()`` /
``rollback()`` / ``with conn:``), which connection the statement span starts on, and,
with ``OTEL_PYTHON_DB_CAPTURE_PARAMETERS``, the statement's parameters.

The parameters and, with ``OTEL_PYTHON_DB_SQLCOMMENTER``, the traceparent comment are
added by a cursor class under contrib's (:func:`_statement_cursor`), inside contrib's
statement span: the span is the current one there, so no hand-off through the span
processors is needed, and contrib's own commenter (which rebuilds its driver facts and
URL-quotes them on every statement even when only the traceparent is kept) is not used.
contrib's duration and returned-rows histograms are recorded through
:mod:`otel_db.metrics.interned_histogram`.
"""

from __future__ import annotations

import functools
from typing import Any

from opentelemetry.instrumentation import dbapi
from opentelemetry.instrumentation.psycopg2 import (
    DatabaseApiIntegration,
    Psycopg2Instrumentor,
    _new_cursor_factory,
)
from opentelemetry.instrumentation.psycopg2.version import __version__
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import get_current_span

from otel_db import attributes as attr
from otel_db.instrumentation.parameter_capture import first_row, statement_parameters
from otel_db.metrics.interned_histogram import intern_contrib_histograms
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.settings import current_settings
from otel_db.sql.parameters import capture_parameters
from otel_db.sqlcommenter import commented
from otel_db.transactions import dbapi_transactions as tx


def _opens_transaction(connection: Any) -> bool:
    # psycopg2 sends BEGIN before the first statement when autocommit is off.
    return not connection.autocommit and not connection.closed


@functools.lru_cache(maxsize=64)
def _connection_class(base: type) -> type:
    """``base`` with commit/rollback/close/``with`` reporting to the transaction tracker."""

    class TracedConnection(base):  # type: ignore[misc, valid-type]
        def commit(self) -> None:
            try:
                super().commit()
            except Exception:
                tx.ended(self, attr.OUTCOME_UNKNOWN)
                raise
            tx.ended(self, attr.OUTCOME_COMMITTED)

        def rollback(self) -> None:
            try:
                super().rollback()
            except Exception:
                tx.ended(self, attr.OUTCOME_UNKNOWN)
                raise
            tx.ended(self, attr.OUTCOME_ROLLED_BACK)

        def close(self) -> None:
            try:
                super().close()
            finally:
                # The server rolls back what was open on a closed connection.
                tx.ended(self, attr.OUTCOME_ROLLED_BACK)

    TracedConnection.__name__ = TracedConnection.__qualname__ = f"OtelDb{base.__name__}"
    return TracedConnection


def _commented(query: Any, cursor: Any, span: Any) -> Any:
    """``query`` with ``span``'s traceparent, when it can take one."""
    try:
        if type(query) is not str:
            as_string = getattr(query, "as_string", None)  # psycopg2.sql.Composable
            if as_string is None:
                return query  # bytes and anything else go to the driver untouched
            query = as_string(cursor.connection)
            if type(query) is not str:
                return query
        return commented(query, span)
    except Exception:  # the statement must run as the application wrote it
        return query


def _record_parameters(span: Any, parameters: Any) -> None:
    try:
        captured = capture_parameters(parameters)
        if captured:
            DEFERRED.add(span, captured)
    except Exception as error:  # never into the application's statement
        FAILURES.report("psycopg2 parameter capture", error)


@functools.lru_cache(maxsize=64)
def _statement_cursor(base: type, comment: bool, capture: bool) -> type:
    """``base`` with what otel_db adds inside contrib's statement span.

    It sits under contrib's traced cursor, so the current span is contrib's statement
    span (a non-recording one when the trace is sampled out: then nothing is added).
    ``comment``: ``execute`` appends the span's traceparent (``executemany`` and
    ``callproc`` are left alone, see :mod:`otel_db.sqlcommenter`). ``capture``: the call's
    real parameter objects become ``db.query.parameter.*`` (``executemany``: the first
    row of a list or tuple; an iterator is never consumed).
    """

    class StatementCursor(base):  # type: ignore[misc, valid-type]
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            span = get_current_span()
            if span.is_recording():
                if capture:
                    _record_parameters(span, statement_parameters(args, kwargs, "vars"))
                if comment:
                    if args:
                        args = (_commented(args[0], self, span), *args[1:])
                    elif "query" in kwargs:
                        kwargs["query"] = _commented(kwargs["query"], self, span)
            return super().execute(*args, **kwargs)

        if capture:

            def executemany(self, *args: Any, **kwargs: Any) -> Any:
                span = get_current_span()
                if span.is_recording():
                    rows = statement_parameters(args, kwargs, "vars_list")
                    _record_parameters(span, first_row(rows))
                return super().executemany(*args, **kwargs)

            def callproc(self, *args: Any, **kwargs: Any) -> Any:
                span = get_current_span()
                if span.is_recording():
                    _record_parameters(span, statement_parameters(args, kwargs, "parameters"))
                return super().callproc(*args, **kwargs)

    name = f"OtelDbStatement{base.__name__}"
    StatementCursor.__name__ = StatementCursor.__qualname__ = name
    return StatementCursor


def _site_cursor_factory(traced: type, driver: type, system: dict[str, Any], track: bool) -> type:
    """contrib's ``traced`` cursor with otel_db's transaction hooks; ``driver`` is the
    class whose parents run a statement untraced (contrib's tracer and otel_db's
    statement cursor skipped)."""

    class SiteCursor(traced):  # type: ignore[misc, valid-type]
        # While instrumentation is suppressed (SQLAlchemy's span is the statement's),
        # a statement goes straight to the driver's cursor: contrib's tracer and the
        # transaction hooks would do nothing else then.
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            if not is_instrumentation_enabled():
                return super(driver, self).execute(*args, **kwargs)
            return self._otel_db_run(super().execute, args, kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            if not is_instrumentation_enabled():
                return super(driver, self).executemany(*args, **kwargs)
            return self._otel_db_run(super().executemany, args, kwargs)

        def callproc(self, *args: Any, **kwargs: Any) -> Any:
            if not is_instrumentation_enabled():
                return super(driver, self).callproc(*args, **kwargs)
            return self._otel_db_run(super().callproc, args, kwargs)

        def _otel_db_run(self, method: Any, args: Any, kwargs: Any) -> Any:
            connection = self.connection
            statement = args[0] if args else kwargs.get("query")
            if method.__name__ == "callproc":
                statement = None  # a procedure: it may write
            token = tx.enter_statement(connection, system, _opens_transaction, track, statement)
            lost = failed = False
            try:
                return method(*args, **kwargs)
            except Exception:
                lost = bool(getattr(connection, "closed", 0))
                failed = True
                raise
            finally:
                tx.exit_statement(token, connection, lost, failed)

    return SiteCursor


class _Integration(DatabaseApiIntegration):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        intern_contrib_histograms(self)

    def wrapped_connection(self, connect_method: Any, args: Any, kwargs: Any) -> Any:
        settings = current_settings()
        from psycopg2.extensions import connection as pg_connection
        from psycopg2.extensions import cursor as pg_cursor

        base_cursor = kwargs.pop("cursor_factory", None) or pg_cursor
        # contrib's own commenter (an application that asked for it) wins over ours.
        comment = settings.sqlcommenter and not self.enable_commenter
        capture = settings.capture_parameters
        driver = _statement_cursor(base_cursor, comment, capture) if comment or capture else None
        traced = _new_cursor_factory(db_api=self, base_factory=driver or base_cursor)

        kwargs["connection_factory"] = _connection_class(
            kwargs.get("connection_factory") or pg_connection
        )
        connection = connect_method(*args, **kwargs)
        self.get_connection_attributes(connection)
        system: dict[str, Any] = {attr.DB_SYSTEM_NAME: "postgresql"}
        if self.database:
            system[attr.DB_NAMESPACE] = self.database
        system.update({k: v for k, v in self.span_attributes.items() if k.startswith("server.")})
        connection.cursor_factory = _site_cursor_factory(
            traced, driver or traced, system, settings.transaction_spans
        )
        return connection


class Psycopg2StatementInstrumentor(Psycopg2Instrumentor):
    """contrib's psycopg2 instrumentor plus pool and transaction facts."""

    def _instrument(self, **kwargs: Any) -> None:
        settings = current_settings()
        dbapi.wrap_connect(
            "opentelemetry.instrumentation.psycopg2",
            __import__("psycopg2"),
            "connect",
            self._DATABASE_SYSTEM,
            self._CONNECTION_ATTRIBUTES,
            version=__version__,
            tracer_provider=kwargs.get("tracer_provider"),
            db_api_integration_factory=_Integration,
            enable_commenter=kwargs.get("enable_commenter", False),
            commenter_options=kwargs.get("commenter_options", {}),
            enable_attribute_commenter=kwargs.get("enable_attribute_commenter", False),
            capture_parameters=kwargs.get("capture_parameters", False),
        )
        if settings.pool_attributes:
            from otel_db.pools import psycopg2_pool

            psycopg2_pool.install()

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        from otel_db.pools import psycopg2_pool

        psycopg2_pool.uninstall()


__all__ = ["Psycopg2StatementInstrumentor"]
