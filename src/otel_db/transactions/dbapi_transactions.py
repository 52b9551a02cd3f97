"""DB-API transactions (psycopg2, sqlite3): the one the driver opens, to COMMIT/ROLLBACK.

With autocommit off the driver sends BEGIN itself before the first statement; the
transaction span is therefore started just before that statement, and made current
around each of its statements (so they are its children); it ends at ``commit()``,
``rollback()``, ``with conn:``, ``close()`` or a lost connection. Autocommit statements
are not in a transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_db import attributes as attr
from otel_db.pipeline.containment import FAILURES
from otel_db.pools.checkouts import CHECKOUTS
from otel_db.transactions.statement_site import CURRENT_SITE, StatementSite
from otel_db.transactions.tracker import default_tracker

StatementTokens = tuple[Token[StatementSite | None], object | None]

#: What :func:`enter_statement` returns when it set nothing: a statement outside any
#: transaction on a connection no pool lent (the statement site would say nothing).
_NOTHING: Any = ("no site", None)

#: (connection) -> whether the next statement runs inside a driver-opened transaction.
InTransaction = Callable[[Any], bool]


def enter_statement(
    connection: Any,
    system_attributes: dict[str, Any],
    opens_transaction: InTransaction,
    track_transactions: bool,
    statement: object = None,
) -> StatementTokens | None:
    """Before the driver runs a statement: open/find its transaction, mark the site.

    ``statement``: its SQL text, which tells whether the transaction may have written
    (``None``, not seen: it counts as a write)."""
    if not is_instrumentation_enabled():
        return None  # SQLAlchemy (or another tracer) owns this statement
    try:
        transaction = None
        if track_transactions:
            tracker = default_tracker()
            transaction = tracker.current(connection)
            if transaction is None and opens_transaction(connection):
                name = f"TRANSACTION {system_attributes.get(attr.DB_NAMESPACE) or ''}".strip()
                # Not made current for its whole life: DB-API connections interleave
                # freely (two connections, threads), so the transaction is only current
                # around each of its statements (below), in strict LIFO order.
                transaction = tracker.begin(connection, name, system_attributes, make_current=False)
            if transaction is not None:
                tracker.statement_text(transaction, statement)
        context_token = None
        # Under the span that opened the transaction, statements nest in the transaction
        # span; a statement run later under another application span stays under that
        # span (it is still tagged with the transaction and gets its outcome).
        if transaction is not None and trace.get_current_span() is transaction.opened_under:
            context_token = context_api.attach(
                trace.set_span_in_context(transaction.innermost.span)
            )
        if transaction is None and not CHECKOUTS.holds(connection) and CURRENT_SITE.get() is None:
            # Nothing to say about this statement (autocommit, no pool): no site.
            return _NOTHING
        return (CURRENT_SITE.set(StatementSite(connection, transaction)), context_token)
    except Exception as error:
        FAILURES.report("DB-API statement start", error)
        return None


def exit_statement(
    tokens: StatementTokens | None, connection: Any, lost: bool, failed: bool = False
) -> None:
    if tokens is None:
        return
    if failed and tokens is not _NOTHING:
        try:
            default_tracker().statement_failed(connection)
        except Exception as error:
            FAILURES.report("DB-API statement failure", error)
    if tokens is _NOTHING:
        if lost:
            ended(connection, attr.OUTCOME_UNKNOWN)
        return
    try:
        site_token, context_token = tokens
        if context_token is not None:
            context_api.detach(context_token)
        CURRENT_SITE.reset(site_token)
        if lost:
            default_tracker().end(connection, attr.OUTCOME_UNKNOWN)
    except Exception as error:
        FAILURES.report("DB-API statement end", error)


def ended(connection: Any, outcome: str) -> None:
    """``commit()`` / ``rollback()`` / close returned: end the transaction open on it."""
    try:
        default_tracker().end(connection, outcome)
    except Exception as error:
        FAILURES.report("DB-API transaction end", error)


def began_outside(connection: Any, system_attributes: dict[str, Any]) -> None:
    """The driver reports a transaction nobody saw start (``BEGIN`` in a script, a
    statement the prediction missed): track it from now on, so its later statements and
    its end are seen; the statement that opened it stays outside it."""
    try:
        tracker = default_tracker()
        if tracker.current(connection) is None:
            name = f"TRANSACTION {system_attributes.get(attr.DB_NAMESPACE) or ''}".strip()
            tracker.begin(connection, name, system_attributes, make_current=False)
    except Exception as error:
        FAILURES.report("DB-API transaction begin", error)


def is_open(connection: Any) -> bool:
    """Whether a transaction is tracked on ``connection``."""
    try:
        return default_tracker().current(connection) is not None
    except Exception:
        return False


class EndsTransactions:
    """Mixin for a DB-API connection proxy (``__wrapped__``: the driver's connection):
    ``commit``, ``rollback``, ``close`` and ``with`` end the tracked transaction with
    the outcome they had; a call that raises leaves it ``unknown``."""

    __wrapped__: Any

    def commit(self) -> None:
        self._otel_db_end(self.__wrapped__.commit, attr.OUTCOME_COMMITTED)

    def rollback(self) -> None:
        self._otel_db_end(self.__wrapped__.rollback, attr.OUTCOME_ROLLED_BACK)

    def close(self) -> None:
        # The database rolls back what is still open on a closed connection.
        self._otel_db_end(self.__wrapped__.close, attr.OUTCOME_ROLLED_BACK)

    def _otel_db_end(self, method: Callable[[], Any], outcome: str) -> None:
        connection = self.__wrapped__
        try:
            method()
        except Exception:
            ended(connection, attr.OUTCOME_UNKNOWN)
            raise
        ended(connection, outcome)

    def _otel_db_exit_outcome(self, exc_type: Any) -> str:
        """What leaving ``with connection:`` did to the open transaction."""
        return attr.OUTCOME_ROLLED_BACK if exc_type else attr.OUTCOME_COMMITTED

    def __enter__(self) -> Any:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> Any:
        connection = self.__wrapped__
        try:
            result = connection.__exit__(exc_type, *rest)
        except Exception:
            ended(connection, attr.OUTCOME_UNKNOWN)
            raise
        ended(connection, self._otel_db_exit_outcome(exc_type))
        return result
