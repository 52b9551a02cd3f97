"""Redis pipelines against the real Redis: a MULTI/EXEC pipeline is one span, the
pipeline's own, carrying the transaction facts and the batch size; no transaction span."""

from __future__ import annotations

import uuid

import pytest
import redis
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from otel_db import attributes as attr
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis


def _transaction_spans(spans):
    """Spans that are transactions and not statements (none for Redis)."""
    return [
        s
        for s in spans.finished()
        if attr.TRANSACTION_STATEMENT_COUNT in s.attributes
        and attr.DB_OPERATION_BATCH_SIZE not in s.attributes
    ]


def _pipelines(spans):
    return [s for s in spans.db_spans() if attr.DB_OPERATION_BATCH_SIZE in s.attributes]


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


def test_clean_multi_exec_is_one_span_with_the_transaction_facts(spans, client, key):
    with (
        trace.get_tracer("t").start_as_current_span("handler"),
        client.pipeline(transaction=True) as pipe,
    ):
        pipe.set(key, "1").incr(key)
        assert pipe.execute() == [True, 2]
    assert _transaction_spans(spans) == []  # no transaction span around the pipeline
    (handler,) = [s for s in spans.finished() if s.name == "handler"]
    (pipeline,) = spans.db_spans()
    assert pipeline.parent.span_id == handler.context.span_id
    assert pipeline.attributes[attr.TRANSACTION_ID] == f"{pipeline.context.span_id:016x}"
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert pipeline.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 2
    assert pipeline.attributes[attr.DB_OPERATION_BATCH_SIZE] == 2
    assert pipeline.attributes[attr.DB_SYSTEM_NAME] == "redis"
    assert pipeline.status.status_code == StatusCode.UNSET


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
    assert _transaction_spans(spans) == []
    (pipeline,) = _pipelines(spans)
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    # An optimistic-lock conflict is not an exception of the app's making.
    assert pipeline.status.status_code == StatusCode.UNSET
    assert pipeline.attributes[attr.DB_OPERATION_BATCH_SIZE] == 1


def test_plain_pipeline_carries_its_batch_size_and_no_transaction_facts(spans, client, key):
    with client.pipeline(transaction=False) as pipe:
        pipe.set(key, "1").get(key).get(key)
        pipe.execute()
    assert _transaction_spans(spans) == []
    (pipeline,) = _pipelines(spans)
    assert pipeline.attributes[attr.DB_OPERATION_BATCH_SIZE] == 3
    assert all(attr.TRANSACTION_ID not in s.attributes for s in spans.db_spans())
    assert attr.TRANSACTION_OUTCOME not in pipeline.attributes
    assert attr.TRANSACTION_STATEMENT_COUNT not in pipeline.attributes


def test_empty_transaction_pipeline_opens_nothing(spans, client):
    with client.pipeline(transaction=True) as pipe:
        assert pipe.execute() == []
    assert all(attr.TRANSACTION_ID not in s.attributes for s in spans.finished())


def test_async_multi_exec_is_one_span(spans, key):
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
    assert _transaction_spans(spans) == []
    (pipeline,) = _pipelines(spans)
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert pipeline.attributes[attr.TRANSACTION_ID] == f"{pipeline.context.span_id:016x}"
    assert pipeline.attributes[attr.DB_OPERATION_BATCH_SIZE] == 2
    assert attr.POOL_USED in pipeline.attributes


def test_connection_error_leaves_the_outcome_unknown(spans, key):
    # Nothing listens on port 1: the pipeline's checkout fails, EXEC never ran.
    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        with broken.pipeline(transaction=True) as pipe:
            pipe.set(key, "1")
            with pytest.raises(redis.ConnectionError):
                pipe.execute()
    finally:
        broken.close()
    assert _transaction_spans(spans) == []
    (pipeline,) = _pipelines(spans)
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_UNKNOWN


def test_unsampled_transaction_leaves_nothing_behind(spans, client, key):
    from otel_db.pipeline.deferred import DEFERRED

    before = len(DEFERRED)
    sampled_out = trace.NonRecordingSpan(
        trace.SpanContext(
            trace_id=0x1234,
            span_id=0x5678,
            is_remote=True,
            trace_flags=trace.TraceFlags(0),  # the caller decided not to sample
        )
    )
    with trace.use_span(sampled_out), client.pipeline(transaction=True) as pipe:
        pipe.set(key, "1").get(key)
        assert pipe.execute() == [True, b"1"]
    assert spans.finished() == []
    assert len(DEFERRED) == before  # nothing deferred for spans that never end recording


def test_uninstrument_restores_pipelines_and_instrument_brings_the_facts_back(spans, client, key):
    import redis.asyncio.client
    import redis.client
    from wrapt import ObjectProxy

    from otel_db.instrumentation.redis import RedisStatementInstrumentor

    instrumentor = RedisStatementInstrumentor()
    instrumentor.uninstrument()
    try:
        for owner in (redis.client.Pipeline, redis.asyncio.client.Pipeline):
            assert not isinstance(vars(owner)["execute"], ObjectProxy)
        with client.pipeline(transaction=True) as pipe:
            pipe.set(key, "1").get(key)
            assert pipe.execute() == [True, b"1"]
        assert spans.finished() == []
    finally:
        instrumentor.instrument(skip_dep_check=True)
    with client.pipeline(transaction=True) as pipe:
        pipe.set(key, "2").get(key)
        assert pipe.execute() == [True, b"2"]
    (pipeline,) = _pipelines(spans)
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED


def test_query_capture_counts_the_multi_exec_pipeline_as_one_statement(spans, client, key):
    from otel_db.testing import QueryCapture

    with QueryCapture() as captured, client.pipeline(transaction=True) as pipe:
        pipe.set(key, "1").get(key)
        pipe.execute()
    assert captured.count == 1
    (pipeline,) = _pipelines(spans)
    assert pipeline.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 2
