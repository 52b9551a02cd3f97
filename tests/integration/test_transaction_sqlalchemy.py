"""Transaction spans and statement outcomes for SQLAlchemy, against the real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from sqlalchemy.orm import Session

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

SA_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture
def engine():
    engine = sa.create_engine(SA_URL, pool_size=2)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS otel_db_tx (k text PRIMARY KEY)"))
    yield engine
    engine.dispose()


def _key() -> str:
    return uuid.uuid4().hex


def _by_text(spans, marker: str):
    return [s for s in spans.finished() if marker in (s.attributes.get(attr.DB_QUERY_TEXT) or "")]


def _transactions(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


def _by_id(spans):
    return {s.context.span_id: s for s in spans.finished()}


def test_committed_transaction(spans, engine):
    spans.clear()
    with trace.get_tracer("t").start_as_current_span("request"), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO otel_db_tx (k) VALUES (:k)"), {"k": _key()})
        conn.execute(sa.text("SELECT count(*) AS committed_marker FROM otel_db_tx"))
    (tx,) = _transactions(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert tx.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 2
    assert tx.attributes[attr.DB_SYSTEM_NAME] == "postgresql"
    assert tx.status.status_code is not StatusCode.ERROR
    assert _by_id(spans)[tx.parent.span_id].name == "request"
    statements = [
        s for s in spans.db_spans() if s is not tx and s.parent.span_id == tx.context.span_id
    ]
    assert len(statements) == 2
    for span in statements:
        assert span.attributes[attr.TRANSACTION_ID] == tx.attributes[attr.TRANSACTION_ID]
        assert span.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED


def test_integrity_error_rolls_back(spans, engine):
    key = _key()
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO otel_db_tx (k) VALUES (:k)"), {"k": key})
    spans.clear()
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text("SELECT 1 AS before_duplicate"))
        conn.execute(sa.text("INSERT INTO otel_db_tx (k) VALUES (:k)"), {"k": key})
    (tx,) = _transactions(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert tx.status.status_code is StatusCode.ERROR
    statements = [
        s for s in spans.db_spans() if s.parent and s.parent.span_id == tx.context.span_id
    ]
    assert len(statements) == 2
    assert {s.attributes[attr.TRANSACTION_OUTCOME] for s in statements} == {
        attr.OUTCOME_ROLLED_BACK
    }


def test_committed_transaction_with_rolled_back_savepoint(spans, engine):
    kept, discarded = _key(), _key()
    spans.clear()
    with Session(engine) as session, session.begin():
        session.execute(sa.text("INSERT INTO otel_db_tx (k) VALUES (:k)"), {"k": kept})
        savepoint = session.begin_nested()
        session.execute(
            sa.text("INSERT INTO otel_db_tx (k) VALUES (:k) -- inner"), {"k": discarded}
        )
        savepoint.rollback()
        session.execute(sa.text("SELECT 1 AS after_savepoint"))
    scopes = _transactions(spans)
    (tx,) = [s for s in scopes if s.name.startswith("TRANSACTION")]
    (sp,) = [s for s in scopes if s.name.startswith("SAVEPOINT")]
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert sp.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert sp.parent.span_id == tx.context.span_id
    assert sp.attributes[attr.TRANSACTION_ID] == tx.attributes[attr.TRANSACTION_ID]
    inserts = [s for s in spans.db_spans() if s.name.startswith("INSERT")]
    (outer,) = [s for s in inserts if s.parent.span_id == tx.context.span_id]
    (inner,) = [s for s in inserts if s.parent.span_id == sp.context.span_id]
    assert outer.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert inner.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    (after,) = _by_text(spans, "after_savepoint")
    assert after.parent.span_id == tx.context.span_id
    assert after.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    with engine.connect() as conn:
        found = conn.execute(
            sa.text("SELECT k FROM otel_db_tx WHERE k IN (:a, :b)"), {"a": kept, "b": discarded}
        )
        assert [row[0] for row in found] == [kept]


def test_session_rollback(spans, engine):
    spans.clear()
    with Session(engine) as session:
        session.execute(sa.text("INSERT INTO otel_db_tx (k) VALUES (:k)"), {"k": _key()})
        session.rollback()
    (tx,) = _transactions(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert tx.status.status_code is not StatusCode.ERROR  # no exception: a plain rollback
    (insert,) = [s for s in spans.db_spans() if s.name.startswith("INSERT")]
    assert insert.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK


def test_killed_connection_ends_unknown_and_holds_nothing(spans, engine):
    from otel_db.transactions.tracker import default_tracker

    killer = sa.create_engine(SA_URL, poolclass=sa.pool.NullPool)
    spans.clear()
    try:
        with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO otel_db_tx (k) VALUES (:k)"), {"k": _key()})
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            conn.execute(sa.text("SELECT 1 AS after_kill"))
    finally:
        killer.dispose()
    (insert,) = [s for s in spans.db_spans() if s.name.startswith("INSERT")]
    (tx,) = [
        s
        for s in _transactions(spans)
        if s.attributes[attr.TRANSACTION_ID] == insert.attributes[attr.TRANSACTION_ID]
    ]
    assert tx.attributes[attr.TRANSACTION_OUTCOME] in (
        attr.OUTCOME_UNKNOWN,
        attr.OUTCOME_ROLLED_BACK,
    )
    assert insert.attributes[attr.TRANSACTION_OUTCOME] in (
        attr.OUTCOME_UNKNOWN,
        attr.OUTCOME_ROLLED_BACK,
    )
    assert default_tracker().current(conn) is None
    assert not trace.get_current_span().is_recording()  # no transaction context left behind


def test_async_engine_transaction(spans):
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def main() -> None:
        engine = create_async_engine(
            POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
        )
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("SELECT 1 AS async_tx_one"))
                await conn.execute(sa.text("SELECT 2 AS async_tx_two"))
        finally:
            await engine.dispose()

    spans.clear()
    with trace.get_tracer("t").start_as_current_span("job"):
        asyncio.run(main())
    (tx,) = [s for s in _transactions(spans) if s.name.startswith("TRANSACTION")]
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    statements = _by_text(spans, "async_tx_")
    assert len(statements) == 2
    for span in statements:
        assert span.parent.span_id == tx.context.span_id
        assert span.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
