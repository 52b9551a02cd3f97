"""Raw asyncpg statements against the real PostgreSQL: returned rows and batch sizes on
contrib's spans, and EXPLAIN for slow SELECTs (off by default), on the same connection,
leaving the application's results, transaction and statement cache as they were."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL
from tests.integration.launcher import run_with_explain


def by_text(spans, fragment):
    return [s for s in spans.db_spans() if fragment in s.attributes.get(attr.DB_QUERY_TEXT, "")]


@pytest.mark.postgres
def test_asyncpg_returned_rows_and_batch_size(spans):
    table = f"otel_db_apg_{uuid.uuid4().hex[:8]}"

    async def run() -> tuple:
        connection = await asyncpg.connect(POSTGRES_URL)
        try:
            await connection.execute(f"CREATE TEMP TABLE {table} (id int, email text)")
            await connection.executemany(
                f"INSERT INTO {table} VALUES ($1, $2)", [(1, "a"), (2, "b"), (3, "c")]
            )
            await connection.executemany(
                f"INSERT INTO {table} VALUES ($1, 'gen')", ((n,) for n in (7, 8))
            )
            many = await connection.fetch(f"SELECT id AS otel_fetch FROM {table} WHERE id < $1", 4)
            one = await connection.fetchrow(f"SELECT id AS otel_row FROM {table} WHERE id = $1", 2)
            none = await connection.fetchrow(
                f"SELECT id AS otel_none FROM {table} WHERE id = $1", 9
            )
            value = await connection.fetchval(f"SELECT email AS otel_val FROM {table} WHERE id = 1")
            status = await connection.execute(f"SELECT id AS otel_exec FROM {table}")
            prepared = await connection.prepare(
                f"SELECT id AS otel_prep FROM {table} WHERE id < $1"
            )
            assert len(await prepared.fetch(3)) == 2
            insert = await connection.prepare(f"INSERT INTO {table} VALUES ($1, 'p')")
            await insert.executemany([(20,), (21,), (22,), (23,)])
            return len(many), one["otel_row"], none, value, status
        finally:
            await connection.close()

    assert asyncio.run(run()) == (3, 2, None, "a", "SELECT 5")
    expected = {
        "otel_fetch": 3,
        "otel_row": 1,
        "otel_none": 0,
        "otel_val": 1,
        "otel_exec": 5,
        "otel_prep": 2,
    }
    for alias, rows in expected.items():
        (span,) = by_text(spans, alias)
        assert span.attributes[attr.DB_RESPONSE_RETURNED_ROWS] == rows, alias
    listed, generated, prepared_many = by_text(spans, f"INSERT INTO {table}")
    assert listed.attributes[attr.DB_OPERATION_BATCH_SIZE] == 3
    assert prepared_many.attributes[attr.DB_OPERATION_BATCH_SIZE] == 4
    assert attr.DB_OPERATION_BATCH_SIZE not in generated.attributes  # never consumed
    (create,) = by_text(spans, "CREATE TEMP TABLE")
    assert attr.DB_RESPONSE_RETURNED_ROWS not in create.attributes
    assert attr.QUERY_EXPLAIN not in by_text(spans, "otel_exec")[0].attributes  # off


APP = f"""
import asyncio, asyncpg

async def main():
    conn = await asyncpg.connect({POSTGRES_URL!r})
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT relname, pg_sleep(0.15) FROM pg_class WHERE relname = $1", "pg_type")
        print("ROWS", [tuple(r) for r in rows])
        print("IN_TX", conn.is_in_transaction())
        await conn.execute("CREATE TEMP TABLE otel_db_apg_explain (id int)")
        await conn.fetchval("SELECT 1")  # fast: no plan
    print("AFTER_TX", conn.is_in_transaction())
    value = await conn.fetchval(
        "SELECT oid, pg_sleep(0.15) FROM pg_namespace WHERE nspname = 'pg_catalog'")
    print("AUTO", value > 0, conn.is_in_transaction())
    # a failed statement gets no plan, and its transaction stays the application's
    try:
        async with conn.transaction():
            await conn.fetch("SELECT pg_sleep(0.15), 1 / 0")
    except asyncpg.DivisionByZeroError:
        print("FAILED_OK", conn.is_in_transaction())
    # the same shape again within the minute: no second plan
    await conn.fetch("SELECT relname, pg_sleep(0.15) FROM pg_class WHERE relname = $1", "x")
    await conn.close()

asyncio.run(main())
"""


def _run(tmp_path, explain: str) -> tuple[str, list[dict]]:
    return run_with_explain(tmp_path, APP, explain)


@pytest.mark.postgres
def test_asyncpg_slow_select_gets_a_plan(tmp_path):
    stdout, spans = _run(tmp_path, "true")
    assert "ROWS [('pg_type', None)]" in stdout  # the application's rows, untouched
    assert "IN_TX True" in stdout  # still in its transaction
    assert "AFTER_TX False" in stdout  # committed as usual: the temp table statement ran
    assert "AUTO True False" in stdout  # no transaction left open outside one
    assert "FAILED_OK False" in stdout
    planned = [s for s in spans if attr.QUERY_EXPLAIN in s["attributes"]]
    assert len(planned) == 2, [s["attributes"].get(attr.DB_QUERY_TEXT) for s in planned]
    for span in planned:
        plan = span["attributes"][attr.QUERY_EXPLAIN]
        assert "Scan" in plan or "Index" in plan, plan
        assert "pg_type" not in plan and "pg_catalog" not in plan  # literals: ?
        assert "actual time" not in plan  # never ANALYZE
        assert span["attributes"][attr.QUERY_SLOW] is True
    texts = [s["attributes"].get(attr.DB_QUERY_TEXT, "") for s in spans]
    assert not any(text.upper().startswith("EXPLAIN") for text in texts)
    assert not any("SAVEPOINT" in text.upper() for text in texts)
    assert texts.count("SELECT relname, pg_sleep(?) FROM pg_class WHERE relname = $1") == 2


@pytest.mark.postgres
def test_asyncpg_no_plan_by_default(tmp_path):
    _, spans = _run(tmp_path, "false")
    assert any("pg_sleep" in s["attributes"].get(attr.DB_QUERY_TEXT, "") for s in spans)
    assert not any(attr.QUERY_EXPLAIN in s["attributes"] for s in spans)
