"""Every context otel_db attaches for SQLAlchemy is detached on every path (issue 21).

Success, error, an error SQLAlchemy hides from ``handle_error`` (MariaDB reflection), a
connection or ``Session`` the application drops, asyncpg, another thread: after each,
nothing otel_db started is current, instrumentation is on, and the spans ended.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import uuid

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import StatusCode
from sqlalchemy.orm import Session

from otel_db import attributes as attr
from otel_db.instrumentation import sqlalchemy as sqlalchemy_instrumentation
from tests.conftest import MARIADB_SQLALCHEMY_URL, POSTGRES_URL

PG_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
ASYNCPG_URL = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
tracer = trace.get_tracer("test")


def _nothing_current() -> None:
    assert not trace.get_current_span().get_span_context().is_valid
    assert is_instrumentation_enabled()


def _transactions(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


def _warm_up(engine: sa.Engine, spans) -> None:
    """The dialect's first-connect queries run in a transaction of their own."""
    with engine.connect():
        pass
    spans.clear()


def test_sqlite_success_and_error_leave_the_application_span_current(spans) -> None:
    engine = sa.create_engine("sqlite://")
    with tracer.start_as_current_span("app") as app, engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        assert trace.get_current_span() is app
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT * FROM otel_db_no_such_table"))
        assert trace.get_current_span() is app
        assert is_instrumentation_enabled()
    _nothing_current()
    assert spans.open_spans() == []
    engine.dispose()


@pytest.mark.mariadb
def test_mariadb_reflection_of_a_missing_table(spans) -> None:
    # SQLAlchemy's MySQL dialect runs SHOW CREATE TABLE / DESCRIBE with
    # skip_user_error_events: no handle_error listener hears of the failure.
    engine = sa.create_engine(MARIADB_SQLALCHEMY_URL)
    name = f"otel_db_missing_{uuid.uuid4().hex[:8]}"
    try:
        with tracer.start_as_current_span("app") as app:
            with pytest.raises(sa.exc.NoSuchTableError):
                sa.Table(name, sa.MetaData(), autoload_with=engine)
            assert trace.get_current_span() is app
            assert is_instrumentation_enabled()
        _nothing_current()
        assert spans.open_spans() == []
        failed = [
            s
            for s in spans.db_spans()
            if name in (s.attributes.get(attr.DB_QUERY_TEXT) or "")
            and s.status.status_code is StatusCode.ERROR
        ]
        assert failed, "the failed reflection statement has an ended, failed span"
        # Instrumentation still works: the next statement is traced.
        spans.clear()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        assert any("SELECT" in s.name for s in spans.db_spans())
    finally:
        engine.dispose()


def test_public_fallback_without_the_error_path_wrapper(spans) -> None:
    """On a SQLAlchemy whose private error path is not the checked one, ``handle_error``
    (public) ends the failed statement and detaches its context, as before."""
    listener = sqlalchemy_instrumentation.SQLAlchemyStatementInstrumentor._listener
    assert listener is not None
    assert sqlalchemy_instrumentation._error_path_checked()
    sqlalchemy_instrumentation._unwrap_error_path()
    try:
        engine = sa.create_engine("sqlite://")
        with tracer.start_as_current_span("app") as app, engine.connect() as conn:
            with pytest.raises(sa.exc.OperationalError):
                conn.execute(sa.text("SELECT * FROM otel_db_fallback_missing"))
            assert trace.get_current_span() is app
        engine.dispose()
    finally:
        assert sqlalchemy_instrumentation._wrap_error_path(listener)
    _nothing_current()
    assert spans.open_spans() == []


@pytest.mark.postgres
def test_a_dropped_session_ends_its_transaction_and_frees_its_connection(spans) -> None:
    engine = sa.create_engine(PG_URL, pool_size=1, max_overflow=0, pool_timeout=5)
    _warm_up(engine, spans)
    try:
        with tracer.start_as_current_span("request"):
            session = Session(engine)
            session.execute(sa.text("SELECT 1 AS abandoned_marker"))
            del session  # never committed, rolled back or closed
            gc.collect()
        _nothing_current()
        with tracer.start_as_current_span("later") as later:
            assert later.parent is None, "a later root span is not hijacked"
            with engine.connect() as conn:  # the only pool slot came back
                conn.execute(sa.text("SELECT 2"))
        (marker,) = [
            s
            for s in spans.db_spans()
            if "abandoned_marker" in (s.attributes.get(attr.DB_QUERY_TEXT) or "")
        ]
        (tx,) = [
            s
            for s in _transactions(spans)
            if s.attributes[attr.TRANSACTION_ID] == marker.attributes[attr.TRANSACTION_ID]
        ]
        assert marker.parent.span_id == tx.context.span_id
        assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_UNKNOWN
        assert spans.open_spans() == []
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_transaction_begun_in_one_thread_committed_in_another(spans, caplog) -> None:
    engine = sa.create_engine(PG_URL)
    _warm_up(engine, spans)
    conn = engine.connect()
    errors: list[BaseException] = []

    def run(work) -> None:
        try:
            work()
            _nothing_current()
        except BaseException as error:  # reported to the test thread below
            errors.append(error)

    try:
        with caplog.at_level(logging.WARNING):
            for work in (
                lambda: conn.execute(sa.text("SELECT 1 AS thread_a")),
                conn.commit,
            ):
                thread = threading.Thread(target=run, args=(work,))
                thread.start()
                thread.join(30)
        assert not errors
        assert not [r for r in caplog.records if "detach" in r.getMessage()]
        (tx,) = _transactions(spans)
        assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
        assert spans.open_spans() == []
    finally:
        conn.close()
        engine.dispose()
    _nothing_current()


@pytest.mark.postgres
def test_asyncpg_session_detaches_everything_and_commit_is_not_a_root(spans, caplog) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def scenario() -> None:
        engine = create_async_engine(ASYNCPG_URL)
        try:
            with tracer.start_as_current_span("request"):
                for _ in range(3):
                    async with AsyncSession(engine) as session, session.begin():
                        await session.execute(sa.text("SELECT 1 AS async_marker"))
                async with AsyncSession(engine) as session:
                    await session.execute(sa.text("SELECT 2 AS async_rolled_back"))
                    await session.rollback()
            _nothing_current()
        finally:
            await engine.dispose()

    with caplog.at_level(logging.WARNING):
        asyncio.run(asyncio.wait_for(scenario(), timeout=60))
    assert not [r for r in caplog.records if "detach" in r.getMessage()]
    _nothing_current()
    finished = spans.finished()
    roots = [s.name for s in finished if s.parent is None]
    assert roots == ["request"], roots
    assert len(_transactions(spans)) == 4
    assert spans.open_spans() == []


def test_info_dicts_stay_the_applications(spans) -> None:
    engine = sa.create_engine(
        "sqlite:///file:otel_db_info?mode=memory&uri=true&cache=shared",
        poolclass=sa.pool.QueuePool,
        pool_size=2,
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            assert conn.info == {}
            assert conn.connection.info == {}
            conn.info["mine"] = 1
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            assert conn.info == {"mine": 1}
        waits = [
            s.attributes.get(attr.POOL_WAIT_MS)
            for s in spans.db_spans()
            if s.attributes.get(attr.DB_QUERY_TEXT) == "SELECT ?"
        ]
        assert waits and all(w is not None for w in waits), "pool facts are still recorded"
    finally:
        engine.dispose()
