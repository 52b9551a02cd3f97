"""pg8000's native interface: ``pg8000.native.Connection.run`` and prepared statements.

The native interface is no DB-API, so contrib's wrapper cannot trace it: otel_db makes
the statement span itself, with the attributes contrib's DB-API spans carry (system,
namespace, server, statement text); the pipeline then sanitizes the text and adds the
summary, fingerprint, slow flag and N+1 facts as for every other driver. Failures are
classified from the exception object (SQLSTATE from pg8000's error fields). Rows: the
statement's ``row_count`` when it returned rows (``run`` returned a list). Each statement
is recorded in ``db.client.operation.duration``, as SQLAlchemy's are.

Transactions: the native interface has no autocommit switch and no public transaction
status; a transaction is whatever the application opens with ``BEGIN`` / ``START
TRANSACTION`` and ends with ``COMMIT`` / ``END`` / ``ROLLBACK`` / ``ABORT`` (or by
closing the connection, which the server rolls back), so those statements decide it.
A ``COMMIT`` the server refuses (a failed transaction, a deferred constraint) ended the
transaction as rolled back. A transaction opened some other way (a function that
issues ``BEGIN``) is not seen.

The connect facts (host, port, database) are read from the ``Connection(...)`` call and
kept in a weak map: nothing is stored on the application's connection.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any, Final

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.enrichers.db_errors import error_attributes
from otel_db.instrumentation.semconv import DatabaseAttributeWriter
from otel_db.metrics import operation_duration
from otel_db.pipeline.containment import FAILURES
from otel_db.settings import current_settings
from otel_db.sql.analysis import analyze_statement
from otel_db.sql.errors import classify_exception
from otel_db.transactions import dbapi_transactions as tx
from otel_db.version import __version__

_SYSTEM: Final = "postgresql"
_BEGINS: Final = frozenset({"BEGIN", "START"})
_COMMITS: Final = frozenset({"COMMIT", "END"})
_ROLLS_BACK: Final = frozenset({"ROLLBACK", "ABORT"})

#: connection -> (span attributes, transaction system attributes); weak: gone with it.
_FACTS: weakref.WeakKeyDictionary[Any, tuple[dict[str, AttributeValue], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)
_installed: list[tuple[type, str, bool]] = []
_lock = threading.Lock()


def _words(statement: object) -> tuple[str, str]:
    """The first two words of ``statement``, upper case ('' when missing)."""
    if not isinstance(statement, str):
        return "", ""
    parts = statement.lstrip().split(None, 2)[:2]
    parts = [part.rstrip(";").upper() for part in parts]
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")


class _NativeTracer:
    def __init__(self, tracer_provider: Any = None) -> None:
        self.writer = DatabaseAttributeWriter()
        self.tracer = trace.get_tracer(
            __name__, __version__, tracer_provider, schema_url=self.writer.schema_url
        )

    def remember(self, connection: Any, facts: dict[str, Any]) -> None:
        attributes: dict[str, AttributeValue] = {}
        writer = self.writer
        writer.system(attributes, _SYSTEM)
        writer.namespace(attributes, facts.get("database"))
        port = facts.get("port")
        writer.server(attributes, facts.get("host"), port if isinstance(port, int) else None)
        system: dict[str, Any] = {attr.DB_SYSTEM_NAME: _SYSTEM}
        if facts.get("database"):
            system[attr.DB_NAMESPACE] = facts["database"]
        if facts.get("host"):
            system[attr.SERVER_ADDRESS] = facts["host"]
        if isinstance(port, int):
            system[attr.SERVER_PORT] = port
        _FACTS[connection] = (attributes, system)

    def run(self, wrapped: Any, connection: Any, statement: object, args: Any, kwargs: Any) -> Any:
        facts = _FACTS.get(connection)
        if facts is None or not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        attributes, system = facts
        first, second = _words(statement)
        settings = current_settings()
        tokens = tx.enter_statement(
            connection,
            system,
            lambda _connection: first in _BEGINS,
            settings.transaction_spans,
            statement,
        )
        error: BaseException | None = None
        try:
            span = self._start(attributes, statement, first)
        except Exception as failure:
            FAILURES.report("pg8000 native statement start", failure)
            span = None
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as raised:
            error = raised
            raise
        else:
            if span is not None:
                self._rows(span, connection, result)
            return result
        finally:
            if span is not None:
                self._end(span, error)
            self._settle(tokens, connection, first, second, error)

    def _start(self, attributes: dict[str, AttributeValue], statement: object, first: str) -> Any:
        span_attributes = dict(attributes)
        if isinstance(statement, str):
            self.writer.statement(span_attributes, statement)
            # (known at the start, as on SQLAlchemy's spans: the duration metric has it)
            self.writer.operation(span_attributes, analyze_statement(statement, _SYSTEM).operation)
        return self.tracer.start_span(
            first or _SYSTEM, kind=SpanKind.CLIENT, attributes=span_attributes
        )

    @staticmethod
    def _rows(span: Any, connection: Any, result: Any) -> None:
        if not isinstance(result, list) or not span.is_recording():
            return
        try:
            count = getattr(connection, "row_count", None)
            rows = count if type(count) is int and count >= 0 else len(result)
            span.set_attribute(attr.DB_RESPONSE_RETURNED_ROWS, rows)
        except Exception as failure:
            FAILURES.report("pg8000 native returned rows", failure)

    @staticmethod
    def _end(span: Any, error: BaseException | None) -> None:
        end_time = time.time_ns()
        try:
            if error is None:
                operation_duration.on_statement_end(span, None, None, None, None, None, end_time)
            elif isinstance(error, Exception) and span.is_recording():
                facts = classify_exception(error)
                span.record_exception(error)
                span.set_attributes(error_attributes(facts))
                span.set_status(Status(StatusCode.ERROR, facts.error_type))
                operation_duration.on_statement_error(span, error)
        except Exception as failure:
            FAILURES.report("pg8000 native statement end", failure)
        finally:
            span.end(end_time)

    @staticmethod
    def _settle(tokens: Any, connection: Any, first: str, second: str, error: Any) -> None:
        lost = False
        if error is not None:
            try:
                lost = classify_exception(error).category == "connection" and not _refused(error)
            except Exception:
                lost = False
        tx.exit_statement(tokens, connection, lost, failed=error is not None)
        if tokens is None:
            return
        if first in _COMMITS or (first == "PREPARE" and second == "TRANSACTION"):
            if error is None:
                outcome = attr.OUTCOME_COMMITTED if first != "PREPARE" else attr.OUTCOME_UNKNOWN
            else:
                outcome = attr.OUTCOME_ROLLED_BACK if _refused(error) else attr.OUTCOME_UNKNOWN
            tx.ended(connection, outcome)
        elif first in _ROLLS_BACK and second not in ("TO", "PREPARED"):
            tx.ended(
                connection, attr.OUTCOME_ROLLED_BACK if error is None else attr.OUTCOME_UNKNOWN
            )


def _refused(error: BaseException) -> bool:
    """The server answered the statement with an error (it ended the transaction if
    the statement was COMMIT), as opposed to the connection failing."""
    if "in failed transaction block" in str(error):
        return True  # pg8000's own check: the server rolled the COMMIT back
    args = getattr(error, "args", ())
    return bool(args) and isinstance(args[0], dict) and "C" in args[0]


def _close(wrapped: Any, connection: Any, args: Any, kwargs: Any) -> Any:
    try:
        result = wrapped(*args, **kwargs)
    except Exception:
        if connection in _FACTS:
            tx.ended(connection, attr.OUTCOME_UNKNOWN)
        raise
    if connection in _FACTS:
        # The server rolls back whatever was still open.
        tx.ended(connection, attr.OUTCOME_ROLLED_BACK)
    return result


def install(tracer_provider: Any = None, connect_facts: Any = None) -> None:
    """Wrap ``pg8000.native``'s ``Connection`` and ``PreparedStatement``."""
    with _lock:
        if _installed:
            return
        import pg8000.native as native

        tracer = _NativeTracer(tracer_provider)

        def init(wrapped: Any, connection: Any, args: Any, kwargs: Any) -> Any:
            result = wrapped(*args, **kwargs)
            try:
                tracer.remember(connection, connect_facts(args, kwargs))
            except Exception as failure:
                FAILURES.report("pg8000 native connect facts", failure)
            return result

        def run(wrapped: Any, connection: Any, args: Any, kwargs: Any) -> Any:
            statement = args[0] if args else kwargs.get("sql")
            return tracer.run(wrapped, connection, statement, args, kwargs)

        def prepared_run(wrapped: Any, prepared: Any, args: Any, kwargs: Any) -> Any:
            connection = getattr(prepared, "con", None)
            if connection is None:
                return wrapped(*args, **kwargs)
            return tracer.run(
                wrapped, connection, getattr(prepared, "statement", None), args, kwargs
            )

        for cls, name, wrapper in (
            (native.Connection, "__init__", init),
            (native.Connection, "run", run),
            (native.Connection, "close", _close),
            (native.PreparedStatement, "run", prepared_run),
        ):
            own = name in vars(cls)
            wrapt.wrap_function_wrapper(cls, name, wrapper)
            _installed.append((cls, name, own))


def uninstall() -> None:
    with _lock:
        for cls, name, own in reversed(_installed):
            current = vars(cls).get(name)
            if not hasattr(current, "__wrapped__"):
                continue
            if own:
                setattr(cls, name, current.__wrapped__)
            else:
                delattr(cls, name)  # inherited: the base class's method shows through again
        _installed.clear()


__all__ = ["install", "uninstall"]
