"""contrib's DB-API tracer made to agree with otel_db's own statement spans.

contrib's DB-API instrumentations (psycopg2, sqlite3, pymysql, mysqlclient,
mysql-connector, ...) report two values differently from otel_db's SQLAlchemy tracer,
and both go into the ``db.client.operation.duration`` metric as well as the spans:

- ``db.operation.name``: contrib takes the statement's first word as the application
  wrote it (``select``); otel_db and ``db.query.summary`` use the SQL keyword
  upper-cased (``SELECT``). One operation had two metric series. contrib's public
  ``CursorTracer.get_operation_name`` is the source of its value: the keyword is
  upper-cased there (anything that is not a plain word, e.g. a ``callproc`` procedure
  name, is left as it is).
- ``db.system.name``: contrib's MySQL-protocol instrumentations say ``mysql`` for a
  MariaDB server, which otel_db's SQLAlchemy tracer (and the conventions) call
  ``mariadb``; a SQLAlchemy MariaDB connection's first statements (the dialect's set-up,
  run on the driver) said ``mysql`` and the later ones ``mariadb``. contrib builds one
  ``DatabaseApiIntegration`` per connection and reads the connection in its public
  ``get_connection_attributes``: there the server's own version string (the driver's
  public ``server_info``/``server_version``, known from the handshake, no round trip)
  decides.

Both are installed once, by the distro, and cost nothing per statement beyond one
function call for the operation name.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_OPERATION_ORIGINAL = "_otel_db_original_get_operation_name"
_CONNECTION_ORIGINAL = "_otel_db_original_get_connection_attributes"


def _keyword(name: Any) -> Any:
    return name.upper() if type(name) is str and name.isalpha() and not name.isupper() else name


def normalize_contrib_operation_names() -> bool:
    """Upper-case the SQL keyword contrib's DB-API tracer reports (idempotent); whether
    contrib's DB-API instrumentation is there to normalize."""
    try:
        from opentelemetry.instrumentation.dbapi import CursorTracer
    except ImportError:
        return False
    with _lock:
        if getattr(CursorTracer, _OPERATION_ORIGINAL, None) is not None:
            return True
        original = CursorTracer.get_operation_name

        def get_operation_name(self: Any, cursor: Any, args: Any) -> Any:
            return _keyword(original(self, cursor, args))

        setattr(CursorTracer, _OPERATION_ORIGINAL, original)
        CursorTracer.get_operation_name = get_operation_name  # type: ignore[method-assign]
    return True


def is_mariadb_server(connection: Any) -> bool:
    """Whether a MySQL-protocol DB-API connection talks to MariaDB (never raises)."""
    try:
        # Plain attributes first: mysql-connector's ``server_info`` and pymysql's
        # ``server_version`` strings. mysql-connector deprecates ``get_server_info()``,
        # and a warning of our making must not reach the application.
        info: Any = None
        for name in ("server_info", "server_version"):
            value = getattr(connection, name, None)
            if isinstance(value, (str, bytes)):
                info = value
                break
        if info is None:
            server_info = getattr(connection, "get_server_info", None)  # mysqlclient
            info = server_info() if callable(server_info) else ""
        if isinstance(info, bytes):
            info = info.decode("utf-8", "replace")
        return isinstance(info, str) and "mariadb" in info.lower()
    except Exception:
        return False


def report_mariadb_as_mariadb() -> bool:
    """Name a MariaDB server ``mariadb`` on contrib's DB-API spans and metrics
    (idempotent); whether contrib's DB-API instrumentation is there."""
    try:
        from opentelemetry.instrumentation.dbapi import DatabaseApiIntegration
    except ImportError:
        return False
    with _lock:
        if getattr(DatabaseApiIntegration, _CONNECTION_ORIGINAL, None) is not None:
            return True
        original = DatabaseApiIntegration.get_connection_attributes

        def get_connection_attributes(self: Any, connection: object) -> None:
            # Before contrib's own reading: it derives its span name from the system.
            if getattr(self, "database_system", None) == "mysql" and is_mariadb_server(connection):
                self.database_system = "mariadb"
            return original(self, connection)

        setattr(DatabaseApiIntegration, _CONNECTION_ORIGINAL, original)
        DatabaseApiIntegration.get_connection_attributes = get_connection_attributes  # type: ignore[method-assign]
    return True
