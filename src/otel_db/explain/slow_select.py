"""The SQLAlchemy ``on_end`` statement hook that puts a slow SELECT's plan on its span.

A plan is taken when all hold: the statement succeeded, its duration (driver time, up
to ``after_cursor_execute``) reached ``OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS``, it is a
single SELECT (not ``executemany``, not ``SELECT ... INTO``, not a server-side/streamed
cursor), the database is PostgreSQL (psycopg2/psycopg), SQLite or MySQL/MariaDB, and no
plan was taken for the same fingerprint in the last :data:`MIN_INTERVAL_S` seconds.

It runs on the application's thread before the statement span ends (the span's end
time is the statement's own, so the EXPLAIN is not counted in its duration), bounded by
:data:`~otel_db.explain.runners.EXPLAIN_TIMEOUT_MS` on the server. The plan is written
with the values the planner quotes replaced by ``?``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final

from opentelemetry.trace import Span

from otel_db import attributes as attr
from otel_db.explain.plan_text import sanitize_plan
from otel_db.explain.runners import explain_mysql, explain_postgresql, explain_sqlite
from otel_db.sql.analysis import analyze_statement

_logger = logging.getLogger(__name__)

#: At most one EXPLAIN per fingerprint in this many seconds.
MIN_INTERVAL_S: Final = 60.0
#: Fingerprints whose last EXPLAIN time is remembered.
MAX_REMEMBERED: Final = 1024

_POSTGRES_DRIVERS: Final = frozenset({"psycopg2", "psycopg"})
_MYSQL_DRIVERS: Final = frozenset({"pymysql", "mysqldb"})


class SlowSelectExplainer:
    """``StatementHooks.on_end`` hook: EXPLAIN for slow SELECTs, rate-limited."""

    def __init__(self, slow_threshold_ms: float, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self._threshold_ns = int(slow_threshold_ms * 1_000_000)
        self._min_interval_s = min_interval_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(
        self,
        span: Span,
        connection: Any,
        cursor: Any,
        context: Any,
        statement: str,
        parameters: Any,
        end_time_ns: int,
    ) -> None:
        start = getattr(span, "start_time", None)
        if start is None or end_time_ns - start < self._threshold_ns:
            return
        if getattr(context, "executemany", False) or getattr(context, "is_server_side", False):
            return
        shape = analyze_statement(statement)
        if shape.operation != "SELECT" or " into " in shape.sanitized_text.lower():
            return
        if not self._due(shape.fingerprint):
            return
        plan = self._explain(connection, cursor, statement, parameters)
        if plan:
            span.set_attribute(attr.QUERY_EXPLAIN, sanitize_plan(plan))

    def _due(self, fingerprint: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(fingerprint)
            if last is not None and now - last < self._min_interval_s:
                return False
            if last is None and len(self._last) >= MAX_REMEMBERED:
                del self._last[next(iter(self._last))]
            self._last.pop(fingerprint, None)
            self._last[fingerprint] = now
            return True

    def _explain(self, connection: Any, cursor: Any, statement: str, parameters: Any) -> str | None:
        dialect = connection.dialect
        driver = getattr(dialect, "driver", "")
        postgresql = dialect.name == "postgresql" and driver in _POSTGRES_DRIVERS
        sqlite = dialect.name == "sqlite" and driver == "pysqlite"
        mysql = dialect.name in ("mysql", "mariadb") and driver in _MYSQL_DRIVERS
        if not (postgresql or sqlite or mysql):
            # Read nothing more: pg8000's cursor.connection, for one, warns when read.
            return None
        dbapi_connection = getattr(cursor, "connection", None)
        if dbapi_connection is None:
            return None
        if postgresql:
            return explain_postgresql(dbapi_connection, statement, parameters)
        if sqlite:
            return explain_sqlite(dbapi_connection, statement, parameters)
        return explain_mysql(
            dbapi_connection,
            statement,
            parameters,
            mariadb=bool(getattr(dialect, "is_mariadb", False)),
            user_cursor=cursor,
        )
