"""DB-API transactions (psycopg2, sqlite3): the one the driver opens, to COMMIT/ROLLBACK.

With autocommit off the driver sends BEGIN itself before the first statement; the
transaction span is therefore started just before that statement (so the statement is
its child) and ended by ``commit()`` / ``rollback()`` / ``with conn:`` or a lost
connection. Autocommit statements are not in a transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_db import attributes as attr
from otel_db.pipeline.containment import FAILURES
from otel_db.transactions.statement_site import CURRENT_SITE, StatementSite
from otel_db.transactions.tracker import default_tracker

#: (connection) -> whether the next statement runs inside a driver-opened transaction.
InTransaction = Callable[[Any], bool]


def enter_statement(
    connection: Any,
    system_attributes: dict[str, Any],
    opens_transaction: InTransaction,
    track_transactions: bool,
) -> Token[StatementSite | None] | None:
    """Before the driver runs a statement: open/find its transaction, mark the site."""
    if not is_instrumentation_enabled():
        return None  # SQLAlchemy (or another tracer) owns this statement
    try:
        transaction = None
        if track_transactions:
            tracker = default_tracker()
            transaction = tracker.current(connection)
            if transaction is None and opens_transaction(connection):
                name = f"TRANSACTION {system_attributes.get(attr.DB_NAMESPACE) or ''}".strip()
                transaction = tracker.begin(connection, name, system_attributes)
        return CURRENT_SITE.set(StatementSite(connection, transaction))
    except Exception as error:
        FAILURES.report("DB-API statement start", error)
        return None


def exit_statement(token: Token[StatementSite | None] | None, connection: Any, lost: bool) -> None:
    if token is None:
        return
    try:
        CURRENT_SITE.reset(token)
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
