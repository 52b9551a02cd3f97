"""sqlite3 tracing that also covers ``Connection.execute()``.

contrib's sqlite3 instrumentation traces statements run through ``cursor()``, but
``connection.execute(...)``, the most common sqlite3 idiom, goes straight to the C
connection and is never seen. The proxy here routes those shortcuts through a traced
cursor, exactly what sqlite3 itself does internally.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from opentelemetry.instrumentation import dbapi
from opentelemetry.instrumentation.dbapi import DatabaseApiIntegration, TracedConnectionProxy
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.instrumentation.sqlite3.version import __version__

_DATABASE_SYSTEM = "sqlite"


class _SQLite3ConnectionProxy(TracedConnectionProxy):
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self.cursor().execute(*args, **kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        return self.cursor().executemany(*args, **kwargs)

    def executescript(self, *args: Any, **kwargs: Any) -> Any:
        return self.cursor().executescript(*args, **kwargs)


def _database_name(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    target = kwargs.get("database", args[0] if args else "")
    target = os.fsdecode(target) if isinstance(target, (bytes, os.PathLike)) else str(target)
    if not target or target == ":memory:" or target.startswith("file::memory:"):
        return ":memory:"
    return os.path.basename(target.split("?", 1)[0].removeprefix("file:"))


class _SQLite3Integration(DatabaseApiIntegration):
    def wrapped_connection(
        self, connect_method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[Any, Any]
    ) -> _SQLite3ConnectionProxy:
        connection = connect_method(*args, **kwargs)
        self.get_connection_attributes(connection)
        self.database = _database_name(args, kwargs)
        return _SQLite3ConnectionProxy(connection, self)


class SQLite3StatementInstrumentor(SQLite3Instrumentor):
    """contrib's sqlite3 instrumentor, with ``Connection.execute*`` traced as well."""

    def _instrument(self, **kwargs: Any) -> None:
        for module in self._TO_WRAP:
            dbapi.wrap_connect(
                "opentelemetry.instrumentation.sqlite3",
                module,
                "connect",
                _DATABASE_SYSTEM,
                {},
                version=__version__,
                tracer_provider=kwargs.get("tracer_provider"),
                db_api_integration_factory=_SQLite3Integration,
            )


__all__ = ["SQLite3StatementInstrumentor"]
