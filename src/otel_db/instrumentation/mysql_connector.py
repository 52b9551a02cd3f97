"""mysql-connector-python: contrib's instrumentor, with otel_db's transactions and pools.

contrib's ``mysql`` instrumentation makes the statement spans; the connection and
cursor proxies of :mod:`otel_db.instrumentation.dbapi_driver` add the transaction the
driver's default (autocommit off) opens. Connections lent by a ``MySQLConnectionPool``
(or ``connect(pool_name=...)``) are traced the same way and carry the pool's facts
(:mod:`otel_db.pools.mysql_connector_pool`). Its errors (``1062 (23000): Duplicate
entry ...``) are classified by number, like pymysql's (see
:mod:`otel_db.sql.driver_errors`).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.mysql import MySQLInstrumentor
from opentelemetry.instrumentation.mysql.version import __version__

from otel_db.instrumentation.dbapi_driver import (
    DriverConnectionProxy,
    DriverIntegration,
    remember_autocommit,
)
from otel_db.instrumentation.dbapi_integration import wrap_connect_shared
from otel_db.settings import current_settings

# Servers that accept query attributes: MySQL 8.0.23 and later (MariaDB never does).
_QUERY_ATTRIBUTES_SINCE = (8, 0, 23)


def _keeps_quiet(connection: Any) -> None:
    """mysql-connector sends the current span's traceparent as a query attribute on
    every statement, and warns ``This version of the server does not support Query
    Attributes`` on each against MariaDB or an older MySQL. With contrib's span
    current around every statement that warning would appear only because the driver
    is traced, so the propagation is turned off for servers that cannot take it."""
    try:
        # (the properties; their get_* twins are deprecated in recent versions)
        info = str(getattr(connection, "server_info", "") or "")
        version = tuple(getattr(connection, "server_version", ()) or ())
        if "mariadb" in info.lower() or version < _QUERY_ATTRIBUTES_SINCE:
            connection.otel_context_propagation = False
    except Exception:
        return


def _autocommit_at_connect(kwargs: Any) -> bool | None:
    # mysql-connector's own default is off; an option file may say otherwise.
    if "option_files" in kwargs:
        return None
    return bool(kwargs.get("autocommit", False))


class _MySQLConnectorIntegration(DriverIntegration):
    autocommit_at_connect = staticmethod(_autocommit_at_connect)  # type: ignore[assignment]

    def wrapped_connection(self, connect_method: Any, args: Any, kwargs: Any) -> Any:
        connection = connect_method(*args, **kwargs)
        if isinstance(connection, DriverConnectionProxy):
            return connection  # connect(pool_name=...): the pool's, traced already
        _keeps_quiet(connection)
        known = _autocommit_at_connect(kwargs)
        if known is not None:
            remember_autocommit(connection, known)
        return self.traced(connection)

    def traced(self, connection: Any) -> DriverConnectionProxy:
        self.get_connection_attributes(connection)
        return DriverConnectionProxy(connection, self)


class MySQLConnectorStatementInstrumentor(MySQLInstrumentor):
    """contrib's mysql-connector instrumentor plus transactions."""

    def _instrument(self, **kwargs: Any) -> None:
        import mysql.connector

        factory = wrap_connect_shared(
            "opentelemetry.instrumentation.mysql",
            mysql.connector,
            "connect",
            self._DATABASE_SYSTEM,
            self._CONNECTION_ATTRIBUTES,
            _MySQLConnectorIntegration,
            version=__version__,
            tracer_provider=kwargs.get("tracer_provider"),
            enable_commenter=kwargs.get("enable_commenter", False),
            commenter_options=kwargs.get("commenter_options", {}),
            enable_attribute_commenter=kwargs.get("enable_attribute_commenter", False),
        )
        if current_settings().pool_attributes:
            from otel_db.pools import mysql_connector_pool

            # A pool lends connections it opened itself (not through the traced
            # connect): each is traced like a direct one.
            mysql_connector_pool.install(lambda pooled: factory().traced(pooled), _keeps_quiet)

    def _uninstrument(self, **kwargs: Any) -> None:
        super()._uninstrument(**kwargs)
        from otel_db.pools import mysql_connector_pool

        mysql_connector_pool.uninstall()


__all__ = ["MySQLConnectorStatementInstrumentor"]
