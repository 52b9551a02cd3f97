"""SQLAlchemy asyncio over asyncpg against the real PostgreSQL: a transaction's work may
begin in one task and end in another (a child task, ``asyncio.gather``, a session closed
elsewhere, a session the application drops), and otel_db must neither log (the
OpenTelemetry context logger's "Failed to detach context", 236 times in SQLAlchemy's own
asyncpg suite before issue 21) nor leave a context behind: every COMMIT/ROLLBACK the
driver runs is a child of the application's span or of its transaction span while that
is still open, never a stray root, and later work keeps its own parent."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL

ASYNCPG_URL = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
tracer = trace.get_tracer("test")

pytestmark = pytest.mark.postgres


@pytest.fixture
def logs() -> Iterator[list[logging.LogRecord]]:
    """Every record of otel_db's or OpenTelemetry's loggers and every ERROR, whatever
    the loggers' levels (OpenTelemetry's context logger reports a failed detach with
    ``logger.exception``)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name.startswith(("opentelemetry", "otel_db")) or (
                record.levelno >= logging.ERROR
            ):
                records.append(record)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    watched = [logging.getLogger(name) for name in ("opentelemetry", "otel_db")]
    levels = [logger.level for logger in watched]
    root.addHandler(handler)
    for logger in watched:
        logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        for logger, level in zip(watched, levels, strict=True):
            logger.setLevel(level)


def _run(scenario: Callable[[sa.ext.asyncio.AsyncEngine], Awaitable[None]]) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    async def main() -> None:
        engine = create_async_engine(ASYNCPG_URL)
        try:
            with tracer.start_as_current_span("setup"):
                async with engine.connect():  # the dialect's first-connect queries
                    pass
            await scenario(engine)
        finally:
            await engine.dispose()

    asyncio.run(asyncio.wait_for(main(), timeout=60))
    assert not trace.get_current_span().get_span_context().is_valid
    assert is_instrumentation_enabled()


def _check(spans, logs: list[logging.LogRecord], *, end_statements: int) -> None:
    """No log record, no span left open, no stray root, every COMMIT/ROLLBACK under the
    application's span or inside its (still open) transaction span."""
    assert [f"{r.name} {r.levelname}: {r.getMessage()}" for r in logs] == []
    assert spans.open_spans() == []
    finished = spans.finished()
    by_id = {s.context.span_id: s for s in finished}
    app = {s.context.span_id for s in finished if s.name.startswith(("request", "setup"))}
    roots = sorted(s.name for s in finished if s.parent is None)
    assert roots and all(name.startswith(("request", "setup")) for name in roots), roots
    ends = [
        s
        for s in spans.db_spans()
        if (s.attributes.get(attr.DB_QUERY_TEXT) or "").rstrip("; ").upper()
        in ("COMMIT", "ROLLBACK")
    ]
    assert len(ends) >= end_statements, [s.name for s in spans.db_spans()]
    for end in ends:
        assert end.parent is not None, f"{end.name} is a stray root"
        parent = by_id.get(end.parent.span_id)
        assert parent is not None, f"{end.name}'s parent was never exported"
        if parent.context.span_id in app:
            continue
        assert attr.TRANSACTION_STATEMENT_COUNT in parent.attributes, (end.name, parent.name)
        assert parent.start_time <= end.start_time and end.end_time <= parent.end_time, (
            f"{end.name} ran after its parent {parent.name} had ended"
        )


def _parents_kept(spans, seen: dict[str, bool]) -> None:
    """Work after the transaction is a child of the request, not of its transaction."""
    assert seen == {"request current": True, "later is a root": True}
    finished = spans.finished()
    (request,) = [s for s in finished if s.name == "request"]
    (after,) = [s for s in finished if s.name == "after"]
    parent = next((s.name for s in finished if s.context.span_id == after.parent.span_id), None)
    assert after.parent.span_id == request.context.span_id, f"'after' is a child of {parent}"


def _table() -> str:
    return f"otel_db_async_{uuid.uuid4().hex[:8]}"


def test_transaction_committed_in_a_child_task(spans, logs) -> None:
    """BEGIN in the request's task, COMMIT in a task it starts (which copies its context)."""
    from sqlalchemy.ext.asyncio import AsyncSession

    async def scenario(engine) -> None:
        with tracer.start_as_current_span("request") as request:
            session = AsyncSession(engine)
            await session.execute(sa.text("SELECT 1 AS begun_in_parent"))

            async def finish() -> None:
                await session.commit()
                await session.close()

            await asyncio.create_task(finish())
            seen["request current"] = trace.get_current_span() is request
            with tracer.start_as_current_span("after"):
                pass
        with tracer.start_as_current_span("request later") as later:
            seen["later is a root"] = later.parent is None

    seen: dict[str, bool] = {}
    spans.clear()
    _run(scenario)
    _check(spans, logs, end_statements=1)
    _parents_kept(spans, seen)


def test_concurrent_tasks_commit_roll_back_and_fail(spans, logs) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    table = _table()

    async def scenario(engine) -> None:
        with tracer.start_as_current_span("setup"):
            async with engine.begin() as conn:
                await conn.execute(sa.text(f"CREATE TABLE {table} (id int primary key)"))

        async def work(n: int) -> None:
            with tracer.start_as_current_span(f"request {n}"):
                async with AsyncSession(engine) as session:
                    if n % 3 == 0:
                        async with session.begin():
                            await session.execute(sa.text(f"INSERT INTO {table} VALUES ({n})"))
                    elif n % 3 == 1:
                        await session.execute(sa.text(f"INSERT INTO {table} VALUES ({n})"))
                        await asyncio.sleep(0)  # let the other tasks interleave
                        await session.rollback()
                    else:
                        with pytest.raises(sa.exc.DBAPIError):
                            async with session.begin():
                                await session.execute(sa.text(f"INSERT INTO {table} VALUES ({n})"))
                                await asyncio.sleep(0)
                                await session.execute(sa.text(f"INSERT INTO {table} VALUES ({n})"))

        try:
            await asyncio.gather(*(work(n) for n in range(6)))
        finally:
            with tracer.start_as_current_span("setup"):
                async with engine.begin() as conn:
                    await conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))

    spans.clear()
    _run(scenario)
    _check(spans, logs, end_statements=6)
    requests = {s.context.span_id for s in spans.finished() if s.name.startswith("request")}
    outcomes = sorted(
        s.attributes[attr.TRANSACTION_OUTCOME]
        for s in spans.finished()
        if attr.TRANSACTION_STATEMENT_COUNT in s.attributes and s.parent.span_id in requests
    )
    assert outcomes == ["committed"] * 2 + ["rolled_back"] * 4, outcomes


def test_session_begun_in_one_task_closed_in_another(spans, logs) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    async def scenario(engine) -> None:
        session = AsyncSession(engine)

        async def begin() -> None:
            with tracer.start_as_current_span("request begin"):
                await session.execute(sa.text("SELECT 1 AS begun_here"))

        async def close() -> None:
            with tracer.start_as_current_span("request close"):
                await session.close()  # rolls back what the other task began

        await asyncio.create_task(begin())
        await asyncio.create_task(close())

    spans.clear()
    _run(scenario)
    _check(spans, logs, end_statements=1)


def test_dropped_session_leaves_no_context(spans, logs) -> None:
    """A session the application drops without commit, rollback or close."""
    from sqlalchemy.ext.asyncio import AsyncSession

    async def scenario(engine) -> None:
        with tracer.start_as_current_span("request") as request:
            session = AsyncSession(engine)
            await session.execute(sa.text("SELECT 1 AS dropped_marker"))
            connection = await session.connection()
            await connection.invalidate()  # asyncpg cannot be reset from gc: drop it plainly
            del session, connection
            gc.collect()
            seen["request current"] = trace.get_current_span() is request
            with tracer.start_as_current_span("after"):
                pass
        with tracer.start_as_current_span("request later") as later:
            seen["later is a root"] = later.parent is None
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 2"))

    seen: dict[str, bool] = {}
    spans.clear()
    _run(scenario)
    _check(spans, logs, end_statements=0)
    _parents_kept(spans, seen)
