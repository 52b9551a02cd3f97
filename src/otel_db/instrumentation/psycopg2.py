"""psycopg2 with pool and transaction facts: contrib's statement spans, row types kept.

contrib's psycopg2 instrumentation replaces the connection's ``cursor_factory`` with its
traced subclass of plain ``cursor`` (contrib issues #578 and #1479): a
``NamedTupleConnection`` or ``DictConnection`` then returns plain tuples,
``conn.cursor_factory`` is no longer what the application set, and a cursor asked for
with ``conn.cursor(cursor_factory=RealDictCursor)`` is not traced at all. otel_db
traces without touching ``cursor_factory``:

- the connection is made from a subclass of the class the application asked for
  (``connection_factory``, or psycopg2's ``connection``) whose extra base
  (:class:`_CursorHook`) sits right above psycopg2's ``connection`` in the MRO. Every
  ``cursor()`` call, whatever the application's connection class did with it (a
  ``NamedTupleConnection`` picks ``NamedTupleCursor``), reaches the hook with the final
  factory, and the hook swaps in the traced subclass of exactly that class
  (:func:`_traced_cursor_class`, one per class, cached);
- the traced cursor makes contrib's statement span (same span, attributes and metrics
  as contrib's ``CursorTracer``, through otel_db's :mod:`lean_statement` tracer where
  that is exactly contrib's span, else contrib's tracer itself), and around it
  otel_db's transaction hooks; ``copy_expert`` (a SQL statement contrib leaves
  untraced) is traced the same way;
- what each connection needs (contrib's tracer with that connection's attributes, its
  transaction facts) is kept beside it in a weak map, never on it.

A ``cursor_factory`` or ``connection_factory`` that is a function rather than a class
cannot be subclassed: it is used as given, untraced.

psycopg2 2.9's ``connect()`` builds the DSN and hands it to the module's ``_connect``;
that is what is wrapped (on those exact versions), so ``connect()`` itself stays
psycopg2's and code replacing ``psycopg2._connect`` sees the arguments the application
passed. Other versions: ``connect`` is wrapped (the public fallback).

The parameters and, with ``OTEL_PYTHON_DB_SQLCOMMENTER``, the traceparent comment are
added by a cursor class under contrib's tracer (:func:`_statement_cursor`), inside
contrib's statement span. contrib's duration and returned-rows histograms are recorded
through :mod:`otel_db.metrics.interned_histogram`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from opentelemetry.instrumentation.psycopg2 import (
    CursorTracer,
    DatabaseApiIntegration,
    Psycopg2Instrumentor,
)
from opentelemetry.instrumentation.psycopg2.version import __version__
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import get_current_span
from psycopg2.extensions import connection as pg_connection
from psycopg2.extensions import cursor as pg_cursor

from otel_db import attributes as attr
from otel_db.by_id import IdTable, remember
from otel_db.instrumentation.dbapi_integration import wrap_connect_shared
from otel_db.instrumentation.lean_statement import LeanStatementTracer
from otel_db.instrumentation.lean_statement import usable as lean_usable
from otel_db.instrumentation.parameter_capture import first_row, statement_parameters
from otel_db.metrics.export_state import contrib_integration_options
from otel_db.metrics.interned_histogram import intern_contrib_histograms
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.settings import current_settings
from otel_db.sql.parameters import capture_parameters
from otel_db.sqlcommenter import commented
from otel_db.transactions import dbapi_transactions as tx

#: psycopg2 releases whose ``connect()`` calls the module-level ``_connect(dsn,
#: connection_factory=..., async_=...)``: the private name wrapped on them.
PRIVATE_CONNECT_VERSIONS = frozenset({(2, 9)})


def _opens_transaction(connection: Any) -> bool:
    # psycopg2 sends BEGIN before the first statement when autocommit is off.
    return not connection.autocommit and not connection.closed


@dataclass(frozen=True, slots=True)
class _ConnectionTracing:
    """What a traced connection's statements need, kept beside the connection."""

    tracer: CursorTracer
    system: dict[str, Any]
    track_transactions: bool
    comment: bool
    capture: bool
    #: contrib's span made by otel_db's lean tracer, where it can (else ``tracer``'s).
    lean: LeanStatementTracer | None = None

    def run(self, cursor: Any, method: Any, args: Any, kwargs: Any) -> Any:
        connection = cursor.connection
        statement = args[0] if args else kwargs.get("query")
        if method.__name__ == "callproc":
            statement = None  # a procedure: it may write
        token = tx.enter_statement(
            connection, self.system, _opens_transaction, self.track_transactions, statement
        )
        lost = failed = False
        try:
            lean = self.lean
            if lean is not None:
                return lean.traced_execution(cursor, method, args, kwargs)
            return self.tracer.traced_execution(cursor, method, *args, **kwargs)
        except Exception:
            lost = bool(getattr(connection, "closed", 0))
            failed = True
            raise
        finally:
            tx.exit_statement(token, connection, lost, failed)


#: id(traced connection) -> (weak reference to it, its tracing); the reference's callback
#: removes the entry with the connection. Read twice per statement: a plain dict (a
#: ``WeakKeyDictionary`` lookup makes a weak reference per call).
_TRACING: IdTable[_ConnectionTracing] = {}


def _tracing_of(connection: Any) -> _ConnectionTracing | None:
    entry = _TRACING.get(id(connection))
    return entry[1] if entry is not None and entry[0]() is connection else None


def _set_tracing(connection: Any, tracing: _ConnectionTracing) -> None:
    remember(_TRACING, connection, tracing)  # one per live connection: not a cache


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


@functools.lru_cache(maxsize=256)
def _statement_cursor(base: type, comment: bool, capture: bool) -> type:
    """``base`` with what otel_db adds inside contrib's statement span.

    It sits under the traced cursor, so the current span is contrib's statement
    span (a non-recording one when the trace is sampled out: then nothing is added).
    ``comment``: ``execute`` appends the span's traceparent (``executemany`` and
    ``callproc`` are left alone, see :mod:`otel_db.sqlcommenter`). ``capture``: the call's
    real parameter objects become ``db.query.parameter.*`` (``executemany``: the first
    row of a list or tuple; an iterator is never consumed).
    """

    class StatementCursor(base):  # type: ignore[misc, valid-type]
        __slots__ = ()

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

    StatementCursor.__name__ = StatementCursor.__qualname__ = base.__name__
    StatementCursor.__module__ = base.__module__
    return StatementCursor


@functools.lru_cache(maxsize=256)
def _traced_cursor_class(base: type, comment: bool, capture: bool) -> type:
    """The cursor class ``base``, traced: its rows, attributes and behaviour are
    ``base``'s. While instrumentation is suppressed (SQLAlchemy's span is the
    statement's), or on a connection no longer traced, a call goes straight to ``base``.
    """
    parent = _statement_cursor(base, comment, capture) if comment or capture else base

    class TracedCursor(parent):  # type: ignore[misc, valid-type]
        __slots__ = ()
        _otel_db_traced = True

        def execute(self, *args: Any, **kwargs: Any) -> Any:
            tracing = _tracing_of(self.connection)
            if tracing is None or not is_instrumentation_enabled():
                return base.execute(self, *args, **kwargs)
            return tracing.run(self, super().execute, args, kwargs)

        def executemany(self, *args: Any, **kwargs: Any) -> Any:
            tracing = _tracing_of(self.connection)
            if tracing is None or not is_instrumentation_enabled():
                return base.executemany(self, *args, **kwargs)
            return tracing.run(self, super().executemany, args, kwargs)

        def callproc(self, *args: Any, **kwargs: Any) -> Any:
            tracing = _tracing_of(self.connection)
            if tracing is None or not is_instrumentation_enabled():
                return base.callproc(self, *args, **kwargs)
            return tracing.run(self, super().callproc, args, kwargs)

        def copy_expert(self, *args: Any, **kwargs: Any) -> Any:
            tracing = _tracing_of(self.connection)
            if tracing is None or not is_instrumentation_enabled() or not args:
                return base.copy_expert(self, *args, **kwargs)
            return tracing.run(self, super().copy_expert, args, kwargs)

    # repr(), error messages and logs name the application's class.
    TracedCursor.__name__ = TracedCursor.__qualname__ = base.__name__
    TracedCursor.__module__ = base.__module__
    return TracedCursor


def _traceable_cursor_class(factory: Any) -> bool:
    return (
        isinstance(factory, type)
        and issubclass(factory, pg_cursor)
        and not getattr(factory, "_otel_db_traced", False)
    )


class _CursorHook(pg_connection):
    """The base right above psycopg2's ``connection``: sees every ``cursor()`` call
    with the cursor class finally chosen, and traces that very class."""

    __slots__ = ()

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        try:
            tracing = _tracing_of(self)
            if tracing is not None:
                positional = len(args) > 1  # cursor(name, cursor_factory, ...)
                factory = args[1] if positional else kwargs.get("cursor_factory")
                if factory is None:
                    factory = self.cursor_factory or pg_cursor
                if _traceable_cursor_class(factory):
                    traced = _traced_cursor_class(factory, tracing.comment, tracing.capture)
                    if positional:
                        args = (args[0], traced, *args[2:])
                    else:
                        kwargs["cursor_factory"] = traced
        except Exception as error:  # the cursor the application asked for, untraced
            FAILURES.report("psycopg2 cursor tracing", error)
        return super().cursor(*args, **kwargs)


def _traceable_connection_class(factory: Any) -> bool:
    return isinstance(factory, type) and issubclass(factory, pg_connection)


@functools.lru_cache(maxsize=64)
def _connection_class(base: type) -> type:
    """``base`` with traced cursors and commit/rollback/close reporting to the
    transaction tracker."""
    bases: tuple[type, ...]
    if issubclass(base, _CursorHook):
        bases = (base,)
    elif base is pg_connection:
        bases = (_CursorHook,)
    else:
        bases = (base, _CursorHook)

    class TracedConnection(*bases):  # type: ignore[misc]
        __slots__ = ()

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

    TracedConnection.__name__ = TracedConnection.__qualname__ = base.__name__
    TracedConnection.__module__ = base.__module__
    return TracedConnection


class _Integration(DatabaseApiIntegration):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **contrib_integration_options(kwargs))
        intern_contrib_histograms(self)

    def wrapped_connection(self, connect_method: Any, args: Any, kwargs: Any) -> Any:
        # connect(dsn, connection_factory, ...) and _connect(dsn, connection_factory, ...)
        positional = len(args) > 1
        factory = args[1] if positional else kwargs.get("connection_factory")
        traced_class = None
        if factory is None or _traceable_connection_class(factory):
            traced_class = _connection_class(factory or pg_connection)
            if positional:
                args = (args[0], traced_class, *args[2:])
            else:
                kwargs = {**kwargs, "connection_factory": traced_class}
        connection = connect_method(*args, **kwargs)
        if traced_class is not None and isinstance(connection, _CursorHook):
            try:
                self._register(connection)
            except Exception as error:  # the connection works, untraced
                FAILURES.report("psycopg2 connection tracing", error)
        return connection

    def _register(self, connection: Any) -> None:
        settings = current_settings()
        self.get_connection_attributes(connection)
        system: dict[str, Any] = {attr.DB_SYSTEM_NAME: "postgresql"}
        if self.database:
            system[attr.DB_NAMESPACE] = self.database
        system.update({k: v for k, v in self.span_attributes.items() if k.startswith("server.")})
        tracer = CursorTracer(self)
        _set_tracing(
            connection,
            _ConnectionTracing(
                tracer=tracer,
                system=system,
                track_transactions=settings.transaction_spans,
                # contrib's own commenter (an application that asked for it) wins over ours.
                comment=settings.sqlcommenter and not self.enable_commenter,
                capture=settings.capture_parameters,
                lean=LeanStatementTracer(tracer) if lean_usable(self) else None,
            ),
        )


def _connect_target(module: Any) -> str:
    """The function of ``module`` (psycopg2) to wrap: ``_connect`` where it is known to
    be what ``connect()`` calls, else the public ``connect``."""
    try:
        version = tuple(int(part) for part in module.__version__.split()[0].split(".")[:2])
        code = module.connect.__code__
        if (
            version in PRIVATE_CONNECT_VERSIONS
            and callable(getattr(module, "_connect", None))
            and "_connect" in code.co_names
            and code.co_varnames[:3] == ("dsn", "connection_factory", "cursor_factory")
        ):
            return "_connect"
    except Exception:
        pass
    return "connect"


class Psycopg2StatementInstrumentor(Psycopg2Instrumentor):
    """contrib's psycopg2 spans, the application's cursor classes, pool and transaction
    facts."""

    _wrapped_target: str | None = None

    def _instrument(self, **kwargs: Any) -> None:
        import psycopg2

        settings = current_settings()
        target = _connect_target(psycopg2)
        wrap_connect_shared(
            "opentelemetry.instrumentation.psycopg2",
            psycopg2,
            target,
            self._DATABASE_SYSTEM,
            self._CONNECTION_ATTRIBUTES,
            _Integration,
            version=__version__,
            tracer_provider=kwargs.get("tracer_provider"),
            enable_commenter=kwargs.get("enable_commenter", False),
            commenter_options=kwargs.get("commenter_options", {}),
            enable_attribute_commenter=kwargs.get("enable_attribute_commenter", False),
            capture_parameters=kwargs.get("capture_parameters", False),
        )
        Psycopg2StatementInstrumentor._wrapped_target = target
        if settings.pool_attributes:
            from otel_db.pools import psycopg2_pool

            psycopg2_pool.install()

    def _uninstrument(self, **kwargs: Any) -> None:
        import psycopg2

        target = Psycopg2StatementInstrumentor._wrapped_target or "connect"
        unwrap(psycopg2, target)
        Psycopg2StatementInstrumentor._wrapped_target = None
        # Connections made while instrumented keep their class; their cursors go
        # straight to the driver from now on.
        _TRACING.clear()
        from otel_db.pools import psycopg2_pool

        psycopg2_pool.uninstall()


__all__ = ["PRIVATE_CONNECT_VERSIONS", "Psycopg2StatementInstrumentor"]
