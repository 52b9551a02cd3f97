"""The pg8000 and mysql-connector proxies change nothing the application can see of the
driver's cursor: an optional DB-API method the driver lacks stays missing (pg8000's own
suite, ``test/legacy/test_dbapi20.py::test_callproc``, checks ``hasattr``)."""

from __future__ import annotations

import inspect
import uuid

import pg8000
import pg8000.dbapi
import pytest

from otel_db import attributes as attr

PG = {"user": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test"}


@pytest.mark.postgres
def test_legacy_cursor_without_callproc_has_none_traced(spans):
    plain = pg8000.legacy.Connection(**PG)  # the class: not traced
    traced = pg8000.connect(**PG)
    try:
        assert not hasattr(plain.cursor(), "callproc")
        cursor = traced.cursor()
        assert type(cursor).__name__ == "DriverCursorProxy"  # (the traced path)
        assert not hasattr(cursor, "callproc")
        with pytest.raises(AttributeError, match="callproc"):
            cursor.callproc("anything")
    finally:
        plain.close()
        traced.close()


@pytest.mark.postgres
def test_dbapi_cursor_callproc_is_traced(spans):
    procedure = f"otel_db_proc_{uuid.uuid4().hex[:8]}"
    connection = pg8000.dbapi.connect(**PG)
    try:
        cursor = connection.cursor()
        cursor.execute(
            f"CREATE PROCEDURE pg_temp.{procedure}(a int) LANGUAGE sql AS $$ SELECT 1 $$"
        )
        assert inspect.ismethod(cursor.callproc)  # as the driver's (PEP 249 suites check)
        cursor.callproc(f"pg_temp.{procedure}", [7])
        connection.commit()
    finally:
        connection.close()
    # (contrib's span for callproc carries the procedure's name as its text)
    (call,) = [
        s
        for s in spans.db_spans()
        if s.attributes.get(attr.DB_QUERY_TEXT) == f"pg_temp.{procedure}"
    ]
    assert call.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
