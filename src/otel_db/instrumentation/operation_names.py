"""One ``db.operation.name`` per operation, whichever tracer saw the statement.

contrib's DB-API tracer (psycopg2, sqlite3, pymysql, ...) takes the statement's first
word as the application wrote it (``select``); otel_db's SQLAlchemy tracer and
``db.query.summary`` use the SQL keyword upper-cased (``SELECT``). Both go into the
``db.client.operation.duration`` metric, which then had two series for one operation.
contrib's public ``CursorTracer.get_operation_name`` is the source of its value (the
span attribute and the metric attribute both come from it), so the keyword is
upper-cased there, once per statement; anything that is not a plain word (a stored
procedure name passed to ``callproc``, a template) is left as it is.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_ORIGINAL = "_otel_db_original_get_operation_name"


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
        if getattr(CursorTracer, _ORIGINAL, None) is not None:
            return True
        original = CursorTracer.get_operation_name

        def get_operation_name(self: Any, cursor: Any, args: Any) -> Any:
            return _keyword(original(self, cursor, args))

        setattr(CursorTracer, _ORIGINAL, original)
        CursorTracer.get_operation_name = get_operation_name  # type: ignore[method-assign]
    return True
