"""Redis MULTI/EXEC pipelines as transactions, against the real Redis."""

from __future__ import annotations

import uuid

import pytest
import redis
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from otel_db import attributes as attr
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis


def _tx(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


def _in_tx(spans, tx):
    tx_id = tx.attributes[attr.TRANSACTION_ID]
    return [
        s
        for s in spans.db_spans()
        if s.attributes.get(attr.TRANSACTION_ID) == tx_id
        and s is not tx
        and attr.TRANSACTION_STATEMENT_COUNT not in s.attributes
    ]


@pytest.fixture
def client():
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def key(client):
    name = f"otel_db:tx:{uuid.uuid4().hex}"
    yield name
    client.delete(name)


def test_clean_multi_exec_commits(spans, client, key):
    with (
        trace.get_tracer("t").start_as_current_span("handler"),
        client.pipeline(transaction=True) as pipe,
    ):
        pipe.set(key, "1").incr(key)
        assert pipe.execute() == [True, 2]
    (tx,) = _tx(spans)
    (handler,) = [s for s in spans.finished() if s.name == "handler"]
    assert tx.parent.span_id == handler.context.span_id
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert tx.attributes[attr.DB_SYSTEM_NAME] == "redis"
    assert tx.status.status_code == StatusCode.UNSET
    statements = _in_tx(spans, tx)
    assert len(statements) == 1  # contrib: one span for the whole pipeline
    (pipeline,) = statements
    assert pipeline.parent.span_id == tx.context.span_id
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert tx.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 1


def test_watch_conflict_rolls_back(spans, client, key):
    other = redis.Redis.from_url(REDIS_URL)
    try:
        client.set(key, "0")
        with client.pipeline(transaction=True) as pipe:
            pipe.watch(key)
            other.set(key, "changed by another client")
            pipe.multi()
            pipe.set(key, "mine")
            with pytest.raises(redis.WatchError):
                pipe.execute()
        assert client.get(key) == b"changed by another client"
    finally:
        other.close()
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    # An optimistic-lock conflict is not an exception of the app's making.
    assert tx.status.status_code == StatusCode.UNSET
    (pipeline,) = _in_tx(spans, tx)
    assert pipeline.parent.span_id == tx.context.span_id
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK


def test_plain_pipeline_is_not_a_transaction(spans, client, key):
    with client.pipeline(transaction=False) as pipe:
        pipe.set(key, "1").get(key)
        pipe.execute()
    assert _tx(spans) == []
    assert all(attr.TRANSACTION_ID not in s.attributes for s in spans.db_spans())


def test_empty_transaction_pipeline_opens_nothing(spans, client):
    with client.pipeline(transaction=True) as pipe:
        assert pipe.execute() == []
    assert _tx(spans) == []


def test_async_multi_exec_commits(spans, key):
    import asyncio

    import redis.asyncio as aioredis

    async def run() -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(key, "1").get(key)
                await pipe.execute()
            await client.delete(key)
        finally:
            await client.aclose()

    asyncio.run(run())
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    (pipeline,) = _in_tx(spans, tx)
    assert pipeline.parent.span_id == tx.context.span_id
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert attr.POOL_USED in pipeline.attributes
