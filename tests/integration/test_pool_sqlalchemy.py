"""Pool attributes on SQLAlchemy statement spans, against the real PostgreSQL."""

from __future__ import annotations

import contextlib
import threading

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from otel_db import attributes as attr
from otel_db.pools.snapshot import POOL_EXHAUSTED_EVENT
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

SA_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
POOL_KEYS = attr.POOL_ATTRIBUTES


def _statement_spans(spans, text):
    return [s for s in spans.db_spans() if text in (s.attributes.get(attr.DB_QUERY_TEXT) or "")]


def _run_threads(target, count: int = 5) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)


def test_five_threads_on_a_pool_of_two(spans):
    engine = sa.create_engine(SA_URL, pool_size=2, max_overflow=0, pool_timeout=30)
    try:

        def work() -> None:
            for _ in range(3):
                with engine.connect() as conn:
                    conn.execute(sa.text("SELECT pg_sleep(0.05)"))

        _run_threads(work)
        statements = _statement_spans(spans, "pg_sleep")
        assert len(statements) == 15
        for span in statements:
            attributes = span.attributes
            assert all(key in attributes for key in POOL_KEYS), attributes
            assert attributes[attr.POOL_MAX] == 2
            assert attributes[attr.POOL_SIZE] == 2
            assert 1 <= attributes[attr.POOL_USED] <= attributes[attr.POOL_MAX]
            assert attributes[attr.POOL_USED] + attributes[attr.POOL_IDLE] <= 2
        assert any(s.attributes[attr.POOL_UTILIZATION] == 1.0 for s in statements)
        assert any(s.attributes[attr.POOL_WAIT_MS] >= 10 for s in statements)
    finally:
        engine.dispose()


def test_counts_stay_exact_after_invalidate_and_detach(spans):
    engine = sa.create_engine(SA_URL, pool_size=2, max_overflow=1)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            conn.invalidate()
        detached = engine.connect()
        detached.detach()
        detached.close()
        with engine.connect() as first, engine.connect() as second:
            first.execute(sa.text("SELECT 1 AS exact_marker"))
            second.execute(sa.text("SELECT 1 AS exact_marker"))
        exact = _statement_spans(spans, "exact_marker")
        assert len(exact) == 2
        for span in exact:
            assert span.attributes[attr.POOL_USED] == 2
            assert span.attributes[attr.POOL_MAX] == 3
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1 AS alone_marker"))
        (alone,) = _statement_spans(spans, "alone_marker")
        assert alone.attributes[attr.POOL_USED] == 1
        assert alone.attributes[attr.POOL_UTILIZATION] == pytest.approx(1 / 3)
    finally:
        engine.dispose()


def test_two_engines_have_distinct_pool_names(spans):
    engines = [sa.create_engine(SA_URL, pool_size=1) for _ in range(2)]
    try:
        for engine in engines:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1 AS which_pool"))
        names = {
            s.attributes[attr.DB_CLIENT_CONNECTION_POOL_NAME]
            for s in _statement_spans(spans, "which_pool")
        }
        assert len(names) == 2
    finally:
        for engine in engines:
            engine.dispose()


def test_exhaustion_is_recorded_on_the_waiting_span(spans):
    engine = sa.create_engine(SA_URL, pool_size=1, max_overflow=0, pool_timeout=0.2)
    tracer = trace.get_tracer("test")
    try:
        with engine.connect() as held:
            held.execute(sa.text("SELECT 1"))
            with tracer.start_as_current_span("handler"), pytest.raises(sa.exc.TimeoutError):
                engine.connect()
        (handler,) = [s for s in spans.finished() if s.name == "handler"]
        names = [event.name for event in handler.events]
        assert POOL_EXHAUSTED_EVENT in names
        assert "exception" in names
    finally:
        engine.dispose()


def test_async_engine_statements_carry_pool_attributes(spans):
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    async def main() -> None:
        engine = create_async_engine(
            POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1),
            pool_size=2,
            max_overflow=0,
        )
        try:

            async def one() -> None:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT pg_sleep(0.05) AS async_marker"))

            await asyncio.gather(*(one() for _ in range(4)))
        finally:
            await engine.dispose()

    asyncio.run(main())
    statements = _statement_spans(spans, "async_marker")
    assert len(statements) == 4
    for span in statements:
        assert span.attributes[attr.POOL_MAX] == 2
        assert span.attributes[attr.POOL_USED] <= 2
    assert any(s.attributes[attr.POOL_UTILIZATION] == 1.0 for s in statements)


def test_exhaustion_while_the_request_holds_a_transaction_is_the_requests(spans):
    """The request holds the only connection in a transaction and asks for another: the
    wait is the request's, not the held transaction's; the application handles the
    TimeoutError, so the request's status stays UNSET (docs/attributes.md)."""
    engine = sa.create_engine(SA_URL, pool_size=1, max_overflow=0, pool_timeout=0.2)
    tracer = trace.get_tracer("test")
    try:
        with tracer.start_as_current_span("GET /exhausted-report"), engine.begin() as held:
            held.execute(sa.text("SELECT 1 AS exhaustion_holder"))
            with contextlib.suppress(sa.exc.TimeoutError):  # the app answers 503
                engine.connect()
        (request,) = [s for s in spans.finished() if s.name == "GET /exhausted-report"]
        assert POOL_EXHAUSTED_EVENT in [event.name for event in request.events]
        assert request.status.status_code is StatusCode.UNSET
        transactions = [
            s
            for s in spans.finished()
            if s.parent is not None
            and s.parent.span_id == request.context.span_id
            and attr.TRANSACTION_STATEMENT_COUNT in (s.attributes or {})
        ]
        assert transactions  # the held one (and the first connect's dialect set-up)
        for transaction in transactions:
            assert POOL_EXHAUSTED_EVENT not in [event.name for event in transaction.events]
    finally:
        engine.dispose()
