"""EXPLAIN for slow SELECTs, through otel_db's SQLAlchemy listener and the real pipeline.

The session's SQLAlchemy listener gets the explainer hook for each test (threshold 0, so
every SELECT counts as slow without sleeping). The user's transaction, settings and
results must come out exactly as they would without the EXPLAIN.
"""

from __future__ import annotations

import dataclasses
import uuid

import psycopg2
import pytest
import sqlalchemy as sa

from otel_db import attributes as attr
from otel_db.explain.runners import explain_postgresql
from otel_db.explain.slow_select import SlowSelectExplainer
from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor
from tests.conftest import MARIADB_SQLALCHEMY_URL, POSTGRES_URL

PG_SQLALCHEMY = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
SECRET_NUMBER = 918273
SECRET_TEXT = "alice-918273@example.com"


@pytest.fixture
def explainer(otel_session):
    listener = SQLAlchemyStatementInstrumentor._listener
    saved = listener._hooks

    def install(threshold_ms: float = 0.0) -> None:
        hook = SlowSelectExplainer(threshold_ms)
        listener._hooks = dataclasses.replace(saved, on_end=(*saved.on_end, hook))

    yield install
    listener._hooks = saved


def _plans(spans):
    return [
        s.attributes.get(attr.QUERY_EXPLAIN)
        for s in spans.db_spans()
        if s.attributes.get(attr.DB_QUERY_TEXT, "").startswith(("SELECT", "select"))
    ]


def _explained(spans):
    return [p for p in _plans(spans) if p]


@pytest.fixture
def pg_engine():
    engine = sa.create_engine(PG_SQLALCHEMY)
    table = f"otel_db_explain_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id int PRIMARY KEY, email text)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (1, 'a'), (2, 'b')"))
    yield engine, table
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {table}"))
    engine.dispose()


@pytest.mark.postgres
def test_plan_inside_a_healthy_transaction_leaves_it_untouched(spans, explainer, pg_engine):
    engine, table = pg_engine
    explainer()
    with engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL statement_timeout = '7s'"))
        txid = conn.execute(sa.text("SELECT txid_current()")).scalar()
        conn.execute(sa.text(f"UPDATE {table} SET email = :e WHERE id = 1"), {"e": SECRET_TEXT})
        rows = conn.execute(
            sa.text(
                f"SELECT id, email FROM {table} "
                f"WHERE id < {SECRET_NUMBER} AND email <> :e ORDER BY id"
            ),
            {"e": SECRET_TEXT},
        ).all()
        assert rows == [(2, "b")]  # results unchanged
        assert conn.execute(sa.text("SELECT txid_current()")).scalar() == txid  # same transaction
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "7s"  # user's setting
        assert (
            conn.execute(sa.text(f"SELECT email FROM {table} WHERE id = 1")).scalar() == SECRET_TEXT
        )
    plans = _explained(spans)
    assert any(table in plan and "cost=" in plan for plan in plans), plans
    for plan in plans:
        assert str(SECRET_NUMBER) not in plan and SECRET_TEXT not in plan
        assert "actual" not in plan  # never ANALYZE


@pytest.mark.postgres
def test_plan_in_autocommit_leaves_the_connection_idle(spans, explainer, pg_engine):
    engine, table = pg_engine
    explainer()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"SELECT * FROM {table} WHERE id = :id"), {"id": 1}).all()
        status = conn.connection.dbapi_connection.info.transaction_status
    assert status == psycopg2.extensions.TRANSACTION_STATUS_IDLE
    assert any("Index Scan" in plan or "Seq Scan" in plan for plan in _explained(spans))


@pytest.mark.postgres
def test_plans_are_rate_limited_per_fingerprint(spans, explainer, pg_engine):
    engine, table = pg_engine
    explainer()
    with engine.connect() as conn:
        for n in range(3):
            conn.execute(sa.text(f"SELECT * FROM {table} WHERE id = {n}")).all()
    mine = [
        s
        for s in spans.db_spans()
        if s.attributes.get(attr.DB_QUERY_TEXT, "").startswith(f"SELECT * FROM {table}")
    ]
    plans = [s.attributes.get(attr.QUERY_EXPLAIN) for s in mine]
    assert len(plans) == 3 and len([p for p in plans if p]) == 1, plans


@pytest.mark.postgres
def test_fast_selects_and_writes_get_no_plan(spans, explainer, pg_engine):
    engine, table = pg_engine
    explainer(threshold_ms=60_000)
    with engine.begin() as conn:
        conn.execute(sa.text(f"SELECT * FROM {table}")).all()
    explainer()
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {table} SET email = 'x' WHERE id = 2"))
    assert not any(s.attributes.get(attr.QUERY_EXPLAIN) for s in spans.db_spans())


@pytest.mark.postgres
def test_never_inside_a_failed_transaction():
    conn = psycopg2.connect(POSTGRES_URL)
    cur = conn.cursor()
    with pytest.raises(psycopg2.Error):
        cur.execute("SELECT 1/0")
    assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    assert explain_postgresql(conn, "SELECT 1", None) is None
    assert conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    conn.close()


def test_sqlite_query_plan(spans, explainer, tmp_path):
    explainer()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)"))
        conn.execute(sa.text("INSERT INTO users VALUES (1, :e)"), {"e": SECRET_TEXT})
        assert (
            conn.execute(sa.text("SELECT email FROM users WHERE id = :id"), {"id": 1}).scalar()
            == SECRET_TEXT
        )
        assert conn.in_transaction()
    engine.dispose()
    (plan,) = _explained(spans)
    assert "SEARCH users USING INTEGER PRIMARY KEY" in plan


@pytest.mark.mariadb
def test_mariadb_plan(spans, explainer):
    engine = sa.create_engine(MARIADB_SQLALCHEMY_URL)
    table = f"otel_db_explain_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id INT PRIMARY KEY, email VARCHAR(100))"))
    explainer()
    try:
        with engine.begin() as conn:
            rows = conn.execute(
                sa.text(f"SELECT * FROM {table} WHERE email = :e"), {"e": SECRET_TEXT}
            ).all()
            assert rows == []
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()
    plans = _explained(spans)
    assert any(f"table={table}" in plan for plan in plans), plans
    assert not any(SECRET_TEXT in plan for plan in plans)


def test_unexplained_driver_cursor_is_not_read(otel_session):
    """pg8000 warns whenever ``cursor.connection`` is read (a DB-API extension): the
    explainer reads it only for the drivers it explains."""
    import warnings
    from types import SimpleNamespace

    import pg8000.dbapi

    url = sa.engine.make_url(POSTGRES_URL)
    conn = pg8000.dbapi.connect(
        user=url.username or "postgres",
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        database=url.database or "test",
        password=url.password,
    )
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        sa_connection = SimpleNamespace(dialect=SimpleNamespace(name="postgresql", driver="pg8000"))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            plan = SlowSelectExplainer(0.0)._explain(sa_connection, cursor, "SELECT 1", ())
    finally:
        conn.close()
    assert plan is None
    assert [str(w.message) for w in caught] == []
