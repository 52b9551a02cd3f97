"""Each gap of the stock stack, closed: exactly one span per statement, against real databases."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import pytest
import sqlalchemy as sa

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL

PG_SQLALCHEMY_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
PG_ASYNC_URL = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)


def _texts(spans) -> list[str]:
    return [span.attributes.get(attr.DB_QUERY_TEXT) for span in spans]


@pytest.mark.postgres
def test_sqlalchemy_over_psycopg2_gives_one_span_with_orm_and_driver_facts(spans):
    engine = sa.create_engine(PG_SQLALCHEMY_URL)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))  # first connect runs dialect start-up queries
        spans.clear()
        conn.execute(sa.text("SELECT 2 AS otel_db_marker"))
    engine.dispose()

    db_spans = [s for s in spans.db_spans() if "otel_db_marker" in (_texts([s])[0] or "")]
    assert len(db_spans) == 1, [(s.name, s.instrumentation_scope.name) for s in spans.db_spans()]
    span = db_spans[0]
    assert span.instrumentation_scope.name == "otel_db.instrumentation.sqlalchemy"
    assert span.attributes[attr.DB_SYSTEM_NAME] == "postgresql"
    assert span.attributes[attr.DB_NAMESPACE] == "test"
    assert span.attributes[attr.SERVER_ADDRESS] == "127.0.0.1"
    assert span.attributes[attr.SERVER_PORT] == 5432
    assert span.attributes[attr.DB_OPERATION_NAME] == "SELECT"
    assert attr.LEGACY_DB_STATEMENT not in span.attributes
    assert spans.open_spans() == []


def test_sqlalchemy_over_sqlite3_gives_one_span_per_statement(spans):
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        spans.clear()
        for n in range(3):
            conn.execute(sa.text("SELECT :n AS otel_db_marker"), {"n": n})
    engine.dispose()

    marked = [s for s in spans.db_spans() if "otel_db_marker" in (_texts([s])[0] or "")]
    assert len(marked) == 3
    assert {s.instrumentation_scope.name for s in marked} == {"otel_db.instrumentation.sqlalchemy"}
    assert all(s.attributes[attr.DB_SYSTEM_NAME] == "sqlite" for s in marked)


@pytest.mark.postgres
def test_async_engine_gives_exactly_one_span_per_statement_and_none_left_open(spans):
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(PG_ASYNC_URL)
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
            spans.clear()
            for n in range(4):
                await conn.execute(sa.text(f"SELECT {n} AS otel_db_async_marker"))
        await engine.dispose()

    asyncio.run(run())
    marked = [s for s in spans.db_spans() if "otel_db_async_marker" in (_texts([s])[0] or "")]
    assert len(marked) == 4, [(s.name, s.instrumentation_scope.name) for s in marked]
    assert {s.instrumentation_scope.name for s in marked} == {"otel_db.instrumentation.sqlalchemy"}
    assert spans.open_spans() == []


@pytest.mark.postgres
def test_failed_statement_ends_its_span_and_the_app_gets_its_own_error(spans):
    engine = sa.create_engine(PG_SQLALCHEMY_URL)
    table = f"otel_db_missing_{uuid.uuid4().hex[:8]}"
    with engine.connect() as conn, pytest.raises(sa.exc.ProgrammingError):
        conn.execute(sa.text(f"SELECT * FROM {table}"))
    engine.dispose()
    failed = [s for s in spans.db_spans() if table in (_texts([s])[0] or "")]
    assert len(failed) == 1
    assert failed[0].status.status_code.name == "ERROR"
    assert failed[0].attributes[attr.ERROR_TYPE] == "psycopg2.errors.UndefinedTable"
    assert spans.open_spans() == []

    # After a failure, the next statement is traced as usual (no context left behind).
    spans.clear()
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1 AS after_the_failure"))
    engine.dispose()
    assert any("after_the_failure" in (t or "") for t in _texts(spans.db_spans()))


def test_sqlite3_connection_execute_and_cursor_execute_are_both_traced(spans, tmp_path):
    connection = sqlite3.connect(tmp_path / "shop.sqlite3")
    connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    connection.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",)])
    rows = connection.execute("SELECT name FROM items ORDER BY id").fetchall()
    cursor = connection.cursor()
    cursor.execute("SELECT count(*) FROM items")
    count = cursor.fetchone()[0]
    connection.commit()
    connection.close()

    assert rows == [("a",), ("b",)] and count == 2
    # The driver's transaction (implicit BEGIN before the INSERT) has its own span, and
    # its statements reach the exporter at commit: compare statements in start order.
    statements = [
        s for s in spans.db_spans() if attr.TRANSACTION_STATEMENT_COUNT not in s.attributes
    ]
    texts = _texts(sorted(statements, key=lambda s: s.start_time))
    assert texts == [
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO items (name) VALUES (?)",
        "SELECT name FROM items ORDER BY id",
        "SELECT count(*) FROM items",
    ]
    first = spans.db_spans()[0]
    assert first.attributes[attr.DB_SYSTEM_NAME] == "sqlite"
    assert first.attributes[attr.DB_NAMESPACE] == "shop.sqlite3"


def test_sqlite3_rows_and_row_factory_still_work_through_the_proxy(spans):
    connection = sqlite3.connect(":memory:")
    connection.row_factory = sqlite3.Row
    row = connection.execute("SELECT 1 AS one").fetchone()
    assert row["one"] == 1
    with connection:  # the context manager commits through the proxy
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    assert len(spans.db_spans()) == 2
