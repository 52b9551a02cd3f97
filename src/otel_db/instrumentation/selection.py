"""Which instrumentor runs for each ``opentelemetry_instrumentor`` entry point."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

OWN_SQLALCHEMY_ENTRY_POINT = "otel_db_sqlalchemy"


def instrumentor_for(name: str, load: Callable[[], Any], disabled: Collection[str]) -> type | None:
    """The instrumentor class to run for entry point ``name``; None to run nothing.

    - contrib's ``sqlalchemy`` is replaced by ``otel_db_sqlalchemy``: contrib refuses
      SQLAlchemy 2.1, doubles async engines and leaves a driver span beside each of its own.
      ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy`` still turns ours off.
    - contrib's ``sqlite3`` is replaced by a subclass that also traces ``Connection.execute``.
    """
    if name == "sqlalchemy":
        return None
    if name == OWN_SQLALCHEMY_ENTRY_POINT:
        return None if "sqlalchemy" in disabled else load()
    if name == "psycopg2":  # contrib's, plus pool and transaction facts (issue 3)
        from otel_db.instrumentation.psycopg2 import Psycopg2StatementInstrumentor

        return Psycopg2StatementInstrumentor
    if name == "redis":  # contrib's, plus pool facts, MULTI/EXEC transactions (issue 3)
        from otel_db.instrumentation.redis import RedisStatementInstrumentor

        return RedisStatementInstrumentor
    if name == "mysql":  # contrib's mysql-connector, plus transactions (issue 18)
        from otel_db.instrumentation.mysql_connector import MySQLConnectorStatementInstrumentor

        return MySQLConnectorStatementInstrumentor
    if name == "asyncpg":  # contrib's, plus returned rows, batch size, EXPLAIN (issue 18)
        from otel_db.instrumentation.asyncpg import AsyncpgStatementInstrumentor

        return AsyncpgStatementInstrumentor
    if name == "pymongo":  # contrib's, plus command shapes and error facts (issue 18)
        from otel_db.instrumentation.pymongo import PymongoStatementInstrumentor

        return PymongoStatementInstrumentor
    if name == "botocore":  # contrib's, plus DynamoDB shapes and attributes (issue 18)
        from otel_db.instrumentation.botocore import BotocoreStatementInstrumentor

        return BotocoreStatementInstrumentor
    if name == "sqlite3":
        from otel_db.instrumentation.sqlite3 import SQLite3StatementInstrumentor

        return SQLite3StatementInstrumentor
    return load()
