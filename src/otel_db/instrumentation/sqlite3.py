"""sqlite3 tracing that also covers ``Connection.execute()``, with transactions.

contrib's sqlite3 instrumentation traces statements run through ``cursor()``, but
``connection.execute(...)``, the most common sqlite3 idiom, goes straight to the C
connection and is never seen. The proxy here routes those shortcuts through a traced
cursor, exactly what sqlite3 itself does internally.

Transactions (``transactions/dbapi_transactions.py``): in sqlite3's default (legacy)
mode the driver sends BEGIN itself before INSERT/UPDATE/DELETE/REPLACE, never before a
SELECT or DDL; with ``isolation_level=None`` it sends none. The transaction span is
opened just before the statement the driver will open it for (predicted from its first
keyword, so the statement is the transaction's child), and checked against
``connection.in_transaction`` after every statement: SQL ``COMMIT``/``ROLLBACK``, a
statement that failed before BEGIN, or a ``BEGIN`` the prediction missed are settled
there. It ends at ``commit()``, ``rollback()``, ``with conn:``, ``close()`` and the
implicit COMMIT that ``executescript()`` sends first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation.dbapi import (
    CursorTracer,
    DatabaseApiIntegration,
    ObjectProxy,
    TracedConnectionProxy,
    TracedCursorProxy,
)
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.instrumentation.sqlite3.version import __version__
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_db import attributes as attr
from otel_db.instrumentation.dbapi_integration import wrap_connect_shared
from otel_db.metrics.export_state import contrib_integration_options
from otel_db.metrics.interned_histogram import intern_contrib_histograms
from otel_db.pipeline.containment import FAILURES
from otel_db.settings import current_settings
from otel_db.transactions import dbapi_transactions as tx

_DATABASE_SYSTEM = "sqlite"

# Leading whitespace and comments, then the first keyword (how sqlite3 decides is_dml).
_FIRST_WORD = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z]+)", re.DOTALL)
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_EXPLICIT_BEGIN = frozenset({"BEGIN", "SAVEPOINT"})
_COMMITTING = frozenset({"COMMIT", "END", "RELEASE"})


def _first_word(statement: Any) -> str:
    if not isinstance(statement, str):
        return ""
    found = _FIRST_WORD.match(statement)
    return found.group(1).upper() if found else ""


def _legacy(connection: Any) -> bool:
    """sqlite3's legacy transaction control (the default, and the only mode before 3.12)."""
    autocommit = getattr(connection, "autocommit", None)
    return autocommit not in (True, False) and connection.isolation_level is not None


def _in_transaction(connection: Any) -> bool | None:
    """``connection.in_transaction``; None on a closed connection, where sqlite3 raises
    (the application's statement then fails with sqlite3's own error, as it would
    without otel_db)."""
    try:
        return bool(connection.in_transaction)
    except Exception:
        return None


def _opens_transaction(connection: Any, statement: Any) -> bool:
    in_transaction = _in_transaction(connection)
    if in_transaction is None:
        return False
    if in_transaction or getattr(connection, "autocommit", None) is False:
        return True
    word = _first_word(statement)
    if word in _EXPLICIT_BEGIN:
        return True
    return word in _DML and _legacy(connection)


def _settle(connection: Any, statement: Any, system: dict[str, Any]) -> None:
    """After a statement: make the tracker agree with ``connection.in_transaction``."""
    open_now = _in_transaction(connection)
    if open_now is None:
        return
    tracked = tx.is_open(connection)
    if tracked and not open_now:
        # SQL COMMIT / END / RELEASE of the outermost savepoint persisted it; anything
        # else (ROLLBACK, a statement that failed before BEGIN, an error that made SQLite
        # roll back) did not.
        committed = _first_word(statement) in _COMMITTING
        tx.ended(connection, attr.OUTCOME_COMMITTED if committed else attr.OUTCOME_ROLLED_BACK)
    elif open_now and not tracked:
        tx.began_outside(connection, system)


class _SQLite3CursorProxy(TracedCursorProxy):
    """contrib's traced cursor, telling the transaction tracker about each statement.

    Under SQLAlchemy every statement gets a new cursor, and the driver span is
    suppressed (SQLAlchemy's span is the statement's): so the proxy is made cheap to
    create (contrib's cursor tracer is built at the first traced statement) and a
    statement run while instrumentation is suppressed goes straight to the driver, which
    is all contrib's tracer and the transaction hooks would do then.
    """

    def __init__(self, cursor: Any, integration: DatabaseApiIntegration, system: dict[str, Any]):
        ObjectProxy.__init__(self, cursor)
        self._self_integration = integration
        self._self_cursor_tracer = None
        self._self_system = system

    def _otel_db_tracer(self) -> None:
        if self._self_cursor_tracer is None:
            self._self_cursor_tracer = CursorTracer(self._self_integration)

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        if not is_instrumentation_enabled():
            return self.__wrapped__.execute(*args, **kwargs)
        self._otel_db_tracer()
        return self._otel_db_run(super().execute, args, kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        if not is_instrumentation_enabled():
            return self.__wrapped__.executemany(*args, **kwargs)
        self._otel_db_tracer()
        return self._otel_db_run(super().executemany, args, kwargs)

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        self._otel_db_tracer()
        return super().callproc(*args, **kwargs)

    def _otel_db_run(self, method: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        if not current_settings().transaction_spans:
            return method(*args, **kwargs)
        connection = self.__wrapped__.connection
        statement = args[0] if args else kwargs.get("sql")
        tokens = tx.enter_statement(
            connection,
            self._self_system,
            lambda conn: _opens_transaction(conn, statement),
            True,
            None if method.__name__ == "callproc" else statement,
        )
        failed = False
        try:
            return method(*args, **kwargs)
        except Exception:
            failed = True
            raise
        finally:
            tx.exit_statement(tokens, connection, False, failed)
            if tokens is not None:
                _settle(connection, statement, self._self_system)


class _SQLite3ConnectionProxy(tx.EndsTransactions, TracedConnectionProxy):
    """``with conn:`` commits on success and rolls back on an exception (sqlite3's own
    rule, the mixin's default)."""

    def __init__(self, connection: Any, integration: DatabaseApiIntegration) -> None:
        super().__init__(connection, integration)
        system: dict[str, Any] = {attr.DB_SYSTEM_NAME: _DATABASE_SYSTEM}
        if integration.database:
            system[attr.DB_NAMESPACE] = integration.database
        self._self_system = system
        # Kept under otel_db's own name: contrib's attribute for it is private.
        self._self_otel_db_integration = integration

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return _SQLite3CursorProxy(
            self.__wrapped__.cursor(*args, **kwargs),
            self._self_otel_db_integration,
            self._self_system,
        )

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self.cursor().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        return self.cursor().executemany(*args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        connection = self.__wrapped__
        try:
            # sqlite3 COMMITs a pending transaction before running the script.
            if _in_transaction(connection) and getattr(connection, "autocommit", None) not in (
                True,
                False,
            ):
                tx.ended(connection, attr.OUTCOME_COMMITTED)
        except Exception as failure:
            FAILURES.report("sqlite3 executescript", failure)
        try:
            return self.cursor().executescript(*args, **kwargs)
        finally:
            if current_settings().transaction_spans:
                _settle(connection, "", self._self_system)


def _database_name(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    target = kwargs.get("database", args[0] if args else "")
    target = os.fsdecode(target) if isinstance(target, (bytes, os.PathLike)) else str(target)
    if not target or target == ":memory:" or target.startswith("file::memory:"):
        return ":memory:"
    return os.path.basename(target.split("?", 1)[0].removeprefix("file:"))


class _SQLite3Integration(DatabaseApiIntegration):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **contrib_integration_options(kwargs))
        intern_contrib_histograms(self)

    def wrapped_connection(
        self, connect_method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[Any, Any]
    ) -> _SQLite3ConnectionProxy:
        connection = connect_method(*args, **kwargs)
        self.get_connection_attributes(connection)
        self.database = _database_name(args, kwargs)
        return _SQLite3ConnectionProxy(connection, self)


class SQLite3StatementInstrumentor(SQLite3Instrumentor):
    """contrib's sqlite3 instrumentor, with ``Connection.execute*`` and transactions."""

    def _instrument(self, **kwargs: Any) -> None:
        for module in self._TO_WRAP:
            wrap_connect_shared(
                "opentelemetry.instrumentation.sqlite3",
                module,
                "connect",
                _DATABASE_SYSTEM,
                {},
                _SQLite3Integration,
                version=__version__,
                tracer_provider=kwargs.get("tracer_provider"),
            )


__all__ = ["SQLite3StatementInstrumentor"]
