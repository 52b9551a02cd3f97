"""What a SQLAlchemy engine tells about the database it talks to, computed once per engine."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from otel_db.by_id import IdTable, remember

_SYSTEM_BY_DIALECT = {
    "postgresql": "postgresql",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "mssql": "microsoft.sql_server",
    "oracle": "oracle.db",
}


@dataclass(frozen=True, slots=True)
class EngineFacts:
    system: str
    namespace: str | None
    host: str | None
    port: int | None


_facts: weakref.WeakKeyDictionary[Any, EngineFacts] = weakref.WeakKeyDictionary()
#: The same, found by the engine's id (read twice per statement in a transaction; a
#: ``WeakKeyDictionary`` lookup makes a weak reference per call). Bounded.
_facts_by_id: IdTable[EngineFacts] = {}
_MAX_ENGINES = 10_000


def facts_for(engine: Any, cursor: Any) -> EngineFacts:
    """The engine's facts; the URL first, then the live connection (``cursor``'s, when
    a cursor is given) for what it lacks.

    ``cursor.connection`` is read only while the facts are not known yet: it is a DB-API
    extension, and some drivers (pg8000) warn on every read."""
    entry = _facts_by_id.get(id(engine))
    if entry is not None and entry[0]() is engine:
        return entry[1]
    found = _facts.get(engine)
    if found is None:
        dbapi_connection = getattr(cursor, "connection", None) if cursor is not None else None
        found = _compute(engine, dbapi_connection)
        _facts[engine] = found
    return remember(_facts_by_id, engine, found, _MAX_ENGINES)


def _compute(engine: Any, dbapi_connection: Any) -> EngineFacts:
    dialect_name = getattr(engine.dialect, "name", "") or ""
    if getattr(engine.dialect, "is_mariadb", False):
        dialect_name = "mariadb"
    system = _SYSTEM_BY_DIALECT.get(dialect_name, dialect_name or "other_sql")
    url = engine.url
    host, port, namespace = url.host, url.port, url.database
    if system == "sqlite":
        namespace = _sqlite_namespace(namespace)
        host = None
    elif not host:
        # Unix sockets and DSN-style URLs: ask the driver where it actually connected.
        info = getattr(dbapi_connection, "info", None)  # psycopg2 / psycopg 3
        host = getattr(info, "host", None) or host
        port = _as_int(getattr(info, "port", None)) or port
        namespace = namespace or getattr(info, "dbname", None)
    if system == "postgresql" and port is None and host:
        port = 5432
    elif system in ("mysql", "mariadb") and port is None and host:
        port = 3306
    return EngineFacts(system=system, namespace=namespace or None, host=host, port=port)


def _sqlite_namespace(database: str | None) -> str:
    if not database or database == ":memory:":
        return ":memory:"
    return database.replace("\\", "/").rsplit("/", 1)[-1]


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
