"""db.response.returned_rows, db.operation.batch.size and otel_db.query.total_ms on real
statements: only what the driver knows without fetching more than the application did."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator

import psycopg2
import pymysql
import pytest
import sqlalchemy as sa
from opentelemetry import trace

from otel_db import attributes as attr
from tests.conftest import MARIADB, POSTGRES_URL

tracer = trace.get_tracer(__name__)
ROWS = attr.DB_RESPONSE_RETURNED_ROWS
BATCH = attr.DB_OPERATION_BATCH_SIZE


def by_summary(spans, summary):
    return [s for s in spans.db_spans() if s.attributes.get(attr.DB_QUERY_SUMMARY) == summary]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pg() -> Iterator[psycopg2.extensions.connection]:
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    yield connection
    connection.close()


@pytest.mark.postgres
def test_psycopg2_rows_and_batches(spans, pg):
    table = unique("otel_db_rows")
    cursor = pg.cursor()
    cursor.execute(f"CREATE TEMP TABLE {table} (v int)")
    cursor.executemany(f"INSERT INTO {table} (v) VALUES (%s)", [(1,), (2,), (3,)])
    cursor.executemany(f"INSERT INTO {table} (v) VALUES (%s)", ((n,) for n in (4, 5)))
    cursor.execute(f"SELECT v FROM {table} WHERE v > %s", (1,))
    assert cursor.fetchone() is not None  # the application reads one row: 4 were returned
    cursor.execute(f"UPDATE {table} SET v = v + 1")
    (listed, generated) = by_summary(spans, f"INSERT {table}")
    assert listed.attributes[BATCH] == 3
    assert BATCH not in generated.attributes  # an iterator is never consumed
    assert ROWS not in listed.attributes
    (select,) = by_summary(spans, f"SELECT {table}")
    assert select.attributes[ROWS] == 4
    (update,) = by_summary(spans, f"UPDATE {table}")
    assert ROWS not in update.attributes  # affected, not returned
    assert BATCH not in select.attributes


@pytest.mark.postgres
def test_psycopg2_server_side_cursor_reports_no_rows(spans, pg):
    pg.autocommit = False
    cursor = pg.cursor(name=unique("otel_db_named"))
    cursor.execute("SELECT generate_series(1, 50) AS n")
    assert len(cursor.fetchmany(2)) == 2
    cursor.close()
    pg.rollback()
    (select,) = [
        s
        for s in spans.db_spans()
        if "generate_series" in s.name
        or ("generate_series" in str(s.attributes.get(attr.DB_QUERY_TEXT, "")))
    ]
    assert ROWS not in select.attributes


def test_sqlite3_counts_no_rows_it_has_not_fetched(spans):
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE otel_db_sqlite_rows (v int)")
    cursor = connection.cursor()
    cursor.executemany("INSERT INTO otel_db_sqlite_rows (v) VALUES (?)", [(1,), (2,)])
    cursor.execute("SELECT v FROM otel_db_sqlite_rows")
    cursor.fetchall()
    connection.close()
    (insert,) = by_summary(spans, "INSERT otel_db_sqlite_rows")
    assert insert.attributes[BATCH] == 2
    (select,) = by_summary(spans, "SELECT otel_db_sqlite_rows")
    assert ROWS not in select.attributes  # sqlite3's rowcount is -1 for SELECT


@pytest.fixture
def pymysql_traced(otel_session) -> Iterator[None]:
    from opentelemetry.instrumentation.pymysql import PyMySQLInstrumentor

    instrumentor = PyMySQLInstrumentor()
    already = instrumentor.is_instrumented_by_opentelemetry
    if not already:
        instrumentor.instrument(skip_dep_check=True)
    yield
    if not already:
        instrumentor.uninstrument()


@pytest.mark.mariadb
def test_pymysql_rows_and_batches(spans, pymysql_traced):
    table = unique("otel_db_rows")
    connection = pymysql.connect(**MARIADB, autocommit=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE {table} (v int)")
            cursor.executemany(f"INSERT INTO {table} (v) VALUES (%s)", [(1,), (2,), (3,)])
            cursor.execute(f"SELECT v FROM {table}")
        with connection.cursor(pymysql.cursors.SSCursor) as cursor:  # unbuffered
            cursor.execute(f"SELECT v FROM {table} WHERE v > 1")
            cursor.fetchall()
    finally:
        connection.close()
    (insert,) = by_summary(spans, f"INSERT {table}")
    assert insert.attributes[BATCH] == 3
    buffered, unbuffered = by_summary(spans, f"SELECT {table}")
    assert buffered.attributes[ROWS] == 3
    assert ROWS not in unbuffered.attributes


@pytest.mark.postgres
def test_sqlalchemy_rows(spans):
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as connection:
            result = connection.execute(sa.text("SELECT generate_series(1, 7) AS n"))
            assert result.first() is not None
            streamed = connection.execution_options(stream_results=True).execute(
                sa.text("SELECT generate_series(1, 9) AS m")
            )
            assert len(streamed.fetchmany(2)) == 2
            streamed.close()
    finally:
        engine.dispose()
    selects = [s for s in spans.db_spans() if "generate_series" in str(s.attributes)]
    seven, nine = selects
    assert seven.attributes[ROWS] == 7
    assert ROWS not in nine.attributes  # server-side cursor: not fetched, not known


@pytest.mark.postgres
def test_total_ms_on_the_parent(spans, pg):
    cursor = pg.cursor()
    with tracer.start_as_current_span("request"):
        for _ in range(3):
            cursor.execute("SELECT pg_sleep(0.02)")
    (request,) = [s for s in spans.finished() if s.name == "request"]
    statements = [s for s in spans.db_spans() if s.parent.span_id == request.context.span_id]
    assert len(statements) == 3
    assert request.attributes[attr.QUERY_COUNT] == 3
    total = request.attributes[attr.QUERY_TOTAL_MS]
    summed = sum(s.end_time - s.start_time for s in statements) / 1e6
    assert total == pytest.approx(summed)
    assert 60 <= total <= (request.end_time - request.start_time) / 1e6
