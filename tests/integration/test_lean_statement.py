"""Raw DB-API statements traced by otel_db's lean tracer export exactly the spans
contrib's ``CursorTracer`` path exports (same name, kind, attributes, status, events,
parent, scope), on real PostgreSQL (psycopg2, pg8000) and MariaDB (mysql-connector)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import mysql.connector
import pg8000.dbapi
import psycopg2
import pytest
from opentelemetry import trace

from otel_db.instrumentation import psycopg2 as traced_psycopg2
from otel_db.instrumentation.lean_statement import LeanStatementTracer
from tests.conftest import MARIADB, POSTGRES_URL

pytestmark = pytest.mark.shortcut

PG8000 = {"user": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test"}


def _psycopg2(lean: bool) -> Any:
    connection = psycopg2.connect(POSTGRES_URL)
    tracing = traced_psycopg2._tracing_of(connection)
    assert isinstance(tracing.lean, LeanStatementTracer)
    if not lean:
        traced_psycopg2._set_tracing(connection, dataclasses.replace(tracing, lean=None))
    return connection


def _proxied(connect: Callable[[], Any]) -> Callable[[bool], Any]:
    def open_connection(lean: bool) -> Any:
        connection = connect()
        integration = connection._self_otel_db_integration
        assert isinstance(integration.lean_tracer(), LeanStatementTracer)
        if not lean:
            integration._lean = None  # contrib's CursorTracer makes the spans
        return connection

    return open_connection


DRIVERS = {
    "psycopg2": pytest.param(_psycopg2, marks=pytest.mark.postgres),
    "pg8000": pytest.param(
        _proxied(lambda: pg8000.dbapi.connect(**PG8000)), marks=pytest.mark.postgres
    ),
    "mysql-connector": pytest.param(
        _proxied(lambda: mysql.connector.connect(**MARIADB)), marks=pytest.mark.mariadb
    ),
}


def _run_workload(connection: Any, table: str) -> None:
    tracer = trace.get_tracer("tests.lean")
    cursor = connection.cursor()
    try:
        cursor.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v varchar(10))")
        cursor.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "one"))
        cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(2, "a"), (3, "b")])
        cursor.execute(f"select id, v from {table} where id > %s", (0,))
        cursor.fetchall()
        cursor.execute(f"/* leading */ SELECT count(*) FROM {table}")
        cursor.fetchall()
        with tracer.start_as_current_span("parent"):
            cursor.execute("SELECT %s", (5,))
            cursor.fetchall()
        with pytest.raises(Exception):  # noqa: B017 - each driver's own duplicate-key error
            cursor.execute(f"INSERT INTO {table} VALUES (%s, %s)", (1, "dup"))
        if getattr(connection, "autocommit", True) is False:
            connection.rollback()
        with pytest.raises(Exception):  # noqa: B017
            cursor.execute("SELECT * FROM otel_db_lean_no_such_table")
        if getattr(connection, "autocommit", True) is False:
            connection.rollback()
    finally:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.close()


def _comparable(span: Any, table: str) -> tuple:
    def plain(value: Any) -> Any:
        return value.replace(table, "TABLE") if isinstance(value, str) else value

    attributes = {
        key: plain(value)
        for key, value in span.attributes.items()
        if key not in ("otel_db.transaction.id", "otel_db.query.fingerprint")
    }
    events = [
        (
            event.name,
            {
                key: plain(value)
                for key, value in event.attributes.items()
                if key != "exception.stacktrace"
            },
        )
        for event in span.events
    ]
    return (
        plain(span.name),
        span.kind,
        sorted(attributes.items()),
        span.status.status_code,
        plain(span.status.description),
        events,
        span.parent is not None,
        span.instrumentation_scope.name,
        span.instrumentation_scope.version,
        span.instrumentation_scope.schema_url,
    )


def _spans_of_workload(spans: Any, open_connection: Callable[[bool], Any], lean: bool) -> list:
    table = f"otel_db_lean_{uuid.uuid4().hex[:8]}"
    connection = open_connection(lean)
    connection.autocommit = True
    try:
        spans.clear()
        _run_workload(connection, table)
        return [_comparable(span, table) for span in spans.db_spans()]
    finally:
        connection.close()


@pytest.mark.parametrize("open_connection", list(DRIVERS.values()), ids=list(DRIVERS))
def test_lean_spans_are_contribs_spans(spans, open_connection):
    lean = _spans_of_workload(spans, open_connection, lean=True)
    contrib = _spans_of_workload(spans, open_connection, lean=False)
    assert len(lean) == 9
    assert lean == contrib


@pytest.mark.postgres
def test_lean_tracer_keeps_each_text_once(spans):
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    try:
        lean = traced_psycopg2._tracing_of(connection).lean
        with connection.cursor() as cursor:
            for i in range(3):
                cursor.execute("SELECT %s", (i,))
        assert list(lean._templates) == ["SELECT %s"]
    finally:
        connection.close()
