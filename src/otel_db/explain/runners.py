"""Running a plain EXPLAIN (never ANALYZE) on the connection that just ran the statement.

Why the same connection: the plan then matches what the statement saw (its
transaction's temporary tables, ``search_path``, session settings), and no second
connection is checked out of a pool that may be exhausted. The price is care:

PostgreSQL (psycopg2, psycopg): only when the driver reports the transaction healthy.
  - in a transaction (``INTRANS``): ``SAVEPOINT``; ``SET LOCAL statement_timeout``;
    ``EXPLAIN``; then always ``ROLLBACK TO SAVEPOINT`` + ``RELEASE``, which undoes the
    timeout and any error EXPLAIN hit: the user's transaction is exactly as before.
  - no transaction, autocommit: ``BEGIN``; ``SET LOCAL``; ``EXPLAIN``; ``ROLLBACK``.
  - failed (``INERROR``), busy, unknown or two-phase-prepared: nothing is run.
SQLite: ``EXPLAIN QUERY PLAN`` only prepares the statement (it never runs it), takes no
  lock and does not begin a transaction (Python's sqlite3 begins one only before DML).
asyncpg: the same as psycopg2, decided by ``Connection.is_in_transaction()`` (see
  :func:`explain_asyncpg`), awaited after the statement returned.
MySQL/MariaDB (pymysql, mysqlclient): EXPLAIN plans without executing, and an error does
  not end a MySQL transaction. MariaDB's is bounded by ``SET STATEMENT
  max_statement_time=... FOR``; MySQL has no server bound for EXPLAIN (planning only).
  Skipped when the statement used an unbuffered cursor (its rows are still pending).

A new cursor is used each time, so the user's cursor (its rows, ``rowcount``,
``description``) is untouched. Every runner returns the plan text or None.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from otel_db.explain.plan_text import postgres_plan, sqlite_plan, tabular_plan

_logger = logging.getLogger(__name__)

#: Longest an EXPLAIN may take on the server, in milliseconds.
EXPLAIN_TIMEOUT_MS: Final = 500
_SAVEPOINT: Final = "otel_db_explain"

# psycopg2 and psycopg 3 share these transaction_status values.
_IDLE, _INTRANS = 0, 2
_PSYCOPG2_STATUS_PREPARED = 5


def explain_postgresql(dbapi_connection: Any, statement: str, parameters: Any) -> str | None:
    info = getattr(dbapi_connection, "info", None)
    status = getattr(info, "transaction_status", None)
    if status is None or getattr(dbapi_connection, "status", None) == _PSYCOPG2_STATUS_PREPARED:
        return None
    bound = f"SET LOCAL statement_timeout = {EXPLAIN_TIMEOUT_MS}"
    if int(status) == _INTRANS:
        opening = f"SAVEPOINT {_SAVEPOINT}; {bound}"
        closing = f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"
    elif int(status) == _IDLE and getattr(dbapi_connection, "autocommit", False):
        opening, closing = f"BEGIN; {bound}", "ROLLBACK"
    else:
        return None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(opening)
        try:
            cursor.execute("EXPLAIN " + statement, parameters)
            return postgres_plan(cursor.fetchall())
        except Exception:
            _logger.debug("otel_db: EXPLAIN failed (timeout or unplannable)", exc_info=True)
            return None
        finally:
            cursor.execute(closing)
    finally:
        cursor.close()


def explain_sqlite(dbapi_connection: Any, statement: str, parameters: Any) -> str | None:
    cursor = dbapi_connection.cursor()
    try:
        if parameters is None:
            cursor.execute("EXPLAIN QUERY PLAN " + statement)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        return sqlite_plan(cursor.fetchall())
    finally:
        cursor.close()


def explain_mysql(
    dbapi_connection: Any, statement: str, parameters: Any, *, mariadb: bool, user_cursor: Any
) -> str | None:
    if "SS" in type(user_cursor).__name__:  # SSCursor / SSDictCursor: rows still pending
        return None
    cursor_class = getattr(dbapi_connection, "cursorclass", None)
    if cursor_class is not None and "SS" in getattr(cursor_class, "__name__", ""):
        return None
    prefix = "EXPLAIN "
    if mariadb:
        prefix = f"SET STATEMENT max_statement_time={EXPLAIN_TIMEOUT_MS / 1000:.3f} FOR EXPLAIN "
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(prefix + statement, parameters)
        columns = [column[0] for column in cursor.description or ()]
        return tabular_plan(columns, cursor.fetchall())
    finally:
        cursor.close()


async def explain_asyncpg(
    connection: Any, statement: str, arguments: tuple[Any, ...]
) -> str | None:
    """The same bounded, undone EXPLAIN on an asyncpg connection whose statement just
    returned (so no operation of this task is in progress on it).

    asyncpg reports only whether a transaction is open, not whether it failed; it is
    called only after a statement succeeded, which a failed transaction never lets
    happen. The EXPLAIN is prepared with :meth:`~asyncpg.Connection.prepare`, which
    leaves the connection's statement cache (and so the application's cached
    statements) alone. The closing statement runs even when the task is cancelled
    meanwhile, as asyncpg's own ``Transaction`` does on the way out.
    """
    if connection.is_closed():
        return None
    bound = f"SET LOCAL statement_timeout = {EXPLAIN_TIMEOUT_MS}"
    if connection.is_in_transaction():
        opening = f"SAVEPOINT {_SAVEPOINT}; {bound}"
        closing = f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"
    else:
        opening, closing = f"BEGIN; {bound}", "ROLLBACK"
    await connection.execute(opening)
    try:
        prepared = await connection.prepare("EXPLAIN " + statement)
        return postgres_plan(await prepared.fetch(*arguments))
    except Exception:
        _logger.debug("otel_db: EXPLAIN failed (timeout or unplannable)", exc_info=True)
        return None
    finally:
        await connection.execute(closing)
