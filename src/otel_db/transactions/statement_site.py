"""Which driver connection (and transaction) the statement span now starting runs on.

contrib's psycopg2 / sqlite3 / redis instrumentations start the statement span inside
the driver call; otel_db's wrappers around that call set this context variable so the
enrichers' ``on_start`` can put pool and transaction facts on that span.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, NamedTuple

from otel_db.transactions.tracker import Transaction


class StatementSite(NamedTuple):
    connection: Any
    transaction: Transaction | None


CURRENT_SITE: ContextVar[StatementSite | None] = ContextVar("otel_db_statement_site", default=None)
