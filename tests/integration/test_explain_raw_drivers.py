"""EXPLAIN for slow SELECTs on raw psycopg2 connections, under the real launcher: only
with OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES=true, never ANALYZE, no span of its own, the
application's cursor and transaction untouched."""

from __future__ import annotations

import pytest

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL
from tests.integration.launcher import run_with_explain

APP = f"""
import psycopg2
conn = psycopg2.connect({POSTGRES_URL!r})
cur = conn.cursor()
cur.execute("SELECT relname, pg_sleep(0.15) FROM pg_class WHERE relname = 'pg_type'")
print("ROWS", cur.fetchall())
cur.execute("SELECT 1")  # fast: no plan
cur.execute("SELECT count(*) FROM pg_class")
print("STATUS", conn.info.transaction_status)
conn.rollback()
auto = psycopg2.connect({POSTGRES_URL!r})
auto.autocommit = True
c2 = auto.cursor()
c2.execute("SELECT oid, pg_sleep(0.15) FROM pg_namespace WHERE nspname = 'pg_catalog'")
print("AUTO", len(c2.fetchall()))
auto.close()
conn.close()
"""


def _run(tmp_path, explain: str) -> tuple[str, list[dict]]:
    return run_with_explain(tmp_path, APP, explain)


@pytest.mark.postgres
def test_slow_select_gets_a_plan_on_raw_psycopg2(tmp_path):
    stdout, spans = _run(tmp_path, "true")
    assert "ROWS [('pg_type', '')]" in stdout  # the application's rows, untouched
    assert "STATUS 2" in stdout  # still in its transaction (INTRANS)
    assert "AUTO 1" in stdout
    planned = [s for s in spans if attr.QUERY_EXPLAIN in s["attributes"]]
    assert len(planned) == 2  # the two slow SELECTs, in a transaction and autocommit
    for span in planned:
        plan = span["attributes"][attr.QUERY_EXPLAIN]
        assert "Scan" in plan or "Index" in plan, plan
        assert "pg_type" not in plan and "pg_catalog" not in plan  # literals: ?
        assert "actual time" not in plan  # never ANALYZE
        assert span["attributes"][attr.QUERY_SLOW] is True
    texts = [s["attributes"].get(attr.DB_QUERY_TEXT, "") for s in spans]
    assert not any(text.upper().startswith("EXPLAIN") for text in texts)
    assert not any("SAVEPOINT" in text.upper() for text in texts)


@pytest.mark.postgres
def test_no_plan_by_default(tmp_path):
    _, spans = _run(tmp_path, "false")
    assert spans
    assert not any(attr.QUERY_EXPLAIN in s["attributes"] for s in spans)
