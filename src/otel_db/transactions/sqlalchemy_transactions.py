"""SQLAlchemy transactions: ``Connection`` events to transaction and savepoint spans.

Class-level listeners on ``Engine`` see every connection of every engine, sync or async
(an ``AsyncConnection`` runs on its sync ``Connection``), whether the transaction comes
from ``engine.begin()``, ``Connection.begin()``, autobegin, a ``Session`` or
``begin_nested()``. The statement hook tags each statement span with the transaction.

The transaction span is never made the current span: BEGIN and COMMIT happen in
different frames (often tasks or threads), and a connection or ``Session`` the
application drops sends no COMMIT/ROLLBACK at all, so an attached context could never be
reliably detached and would become the parent of unrelated later work. Statements run
under the span that opened the transaction start under the transaction's innermost span
instead (:meth:`SQLAlchemyTransactionListener.statement_parent`).
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from otel_db import attributes as attr
from otel_db.instrumentation.semconv import DatabaseAttributeWriter
from otel_db.instrumentation.sqlalchemy_engine_facts import EngineFacts, facts_for
from otel_db.pipeline.containment import FAILURES
from otel_db.transactions.tracker import TransactionTracker, default_tracker

_MAX_ENGINES = 256


class SQLAlchemyTransactionListener:
    """The listeners; every one contains its own failures."""

    def __init__(self, tracker: TransactionTracker) -> None:
        self.tracker = tracker
        self._writer = DatabaseAttributeWriter()
        # id(engine facts) -> (facts, span name, attributes, their check): the same for every
        # transaction of an engine, so worked out once (bounded; refills at once).
        self._begins: dict[int, tuple[EngineFacts, str, dict[str, Any], int | None]] = {}

    def begin(self, conn: Any) -> None:
        try:
            facts = facts_for(conn.engine, None)
            found = self._begins.get(id(facts))
            if found is None or found[0] is not facts:
                found = self._begin_template(facts)
            _, name, attributes, checked = found
            self.tracker.begin(conn, name, attributes, make_current=False, checked=checked)
        except Exception as error:
            FAILURES.report("SQLAlchemy transaction begin", error)

    def _begin_template(
        self, facts: EngineFacts
    ) -> tuple[EngineFacts, str, dict[str, Any], int | None]:
        attributes: dict[str, Any] = {}
        self._writer.system(attributes, facts.system)
        self._writer.namespace(attributes, facts.namespace)
        self._writer.server(attributes, facts.host, facts.port)
        name = f"TRANSACTION {facts.namespace or facts.system}"
        found = (facts, name, attributes, self.tracker.check(attributes))
        if len(self._begins) >= _MAX_ENGINES:
            self._begins.clear()
        self._begins[id(facts)] = found
        return found

    def commit(self, conn: Any) -> None:
        try:
            self.tracker.end(conn, attr.OUTCOME_COMMITTED)
        except Exception as error:
            FAILURES.report("SQLAlchemy transaction commit", error)

    def rollback(self, conn: Any) -> None:
        try:
            self.tracker.end(conn, attr.OUTCOME_ROLLED_BACK)
        except Exception as error:
            FAILURES.report("SQLAlchemy transaction rollback", error)

    def savepoint(self, conn: Any, name: str) -> None:
        try:
            self.tracker.savepoint(conn, name)
        except Exception as error:
            FAILURES.report("SQLAlchemy savepoint", error)

    def rollback_savepoint(self, conn: Any, name: str, context: Any) -> None:
        try:
            self.tracker.end_savepoint(conn, name, attr.OUTCOME_ROLLED_BACK)
        except Exception as error:
            FAILURES.report("SQLAlchemy savepoint rollback", error)

    def release_savepoint(self, conn: Any, name: str, context: Any) -> None:
        try:
            self.tracker.end_savepoint(conn, name, attr.OUTCOME_COMMITTED)
        except Exception as error:
            FAILURES.report("SQLAlchemy savepoint release", error)

    def handle_error(self, exception_context: Any) -> None:
        # A failed statement: its transaction cannot be `released`. A lost connection:
        # the transaction's outcome is one nobody can know. SQLAlchemy's rollback event
        # follows and ends it (the age limit covers the case it does not).
        try:
            conn = getattr(exception_context, "connection", None)
            if conn is not None:
                self.tracker.statement_failed(conn)
                if getattr(exception_context, "is_disconnect", False):
                    self.tracker.mark_lost(conn)
        except Exception as error:
            FAILURES.report("SQLAlchemy transaction connection loss", error)

    def statement_parent(self, conn: Any) -> Span | None:
        """``StatementHooks.parent``: the transaction's innermost span, for a statement run
        under the span that opened the transaction (the application's, usually); a
        statement run later under another span stays under that one (it is still tagged
        with the transaction and gets its outcome)."""
        transaction = self.tracker.current(conn)
        if transaction is None or trace.get_current_span() is not transaction.opened_under:
            return None
        return transaction.innermost.span

    def statement_hook(self, span: Span, conn: Any, context: Any, statement: Any, *_: Any) -> None:
        """``StatementHooks.on_start``: tag the statement with its transaction (and note
        whether it can write)."""
        self.tracker.statement_started(conn, span, statement)


_EVENTS = (
    "begin",
    "commit",
    "rollback",
    "savepoint",
    "rollback_savepoint",
    "release_savepoint",
    "handle_error",
)

_listener: SQLAlchemyTransactionListener | None = None
_lock = threading.Lock()


def install(tracker: TransactionTracker | None = None) -> SQLAlchemyTransactionListener:
    """Listen to every engine's transactions (once per process)."""
    global _listener
    with _lock:
        if _listener is None:
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            listener = SQLAlchemyTransactionListener(tracker or default_tracker())
            for name in _EVENTS:
                event.listen(Engine, name, getattr(listener, name))
            _listener = listener
        return _listener


def uninstall() -> None:
    global _listener
    with _lock:
        if _listener is None:
            return
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        for name in _EVENTS:
            event.remove(Engine, name, getattr(_listener, name))
        _listener = None


def sqlalchemy_transaction_hooks() -> tuple[Any, ...]:
    return (install().statement_hook,)
