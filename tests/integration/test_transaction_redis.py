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


def test_pipeline_span_leaves_with_its_outcome_before_the_transaction_ends(spans, client, key):
    """The pipeline span is tagged with its transaction's id and outcome before it ends
    (inside contrib's span), so the holding stage never has to wait for the transaction:
    it is exported first, not released when the transaction span ends."""
    with client.pipeline(transaction=True) as pipe:
        pipe.set(key, "1").get(key)
        pipe.execute()
    finished = spans.finished()
    (tx,) = _tx(spans)
    (pipeline,) = _in_tx(spans, tx)
    assert finished.index(pipeline) < finished.index(tx)
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert tx.attributes[attr.TRANSACTION_ID] == f"{tx.context.span_id:016x}"
    assert tx.kind == trace.SpanKind.CLIENT
    assert tx.name == "TRANSACTION 0"
    assert tx.attributes[attr.DB_NAMESPACE] == "0"
    assert tx.attributes[attr.SERVER_ADDRESS] == "127.0.0.1"
    assert tx.attributes[attr.SERVER_PORT] == 6379


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
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_UNKNOWN
    assert tx.status.status_code == StatusCode.UNSET
    (pipeline,) = _in_tx(spans, tx)
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
    assert _tx(spans) == []
    assert len(DEFERRED) == before  # nothing deferred for spans that never end recording


def test_uninstrument_restores_pipelines_and_instrument_brings_transactions_back(
    spans, client, key
):
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
    (tx,) = _tx(spans)
    (pipeline,) = _in_tx(spans, tx)
    assert pipeline.parent.span_id == tx.context.span_id
    assert pipeline.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED


def test_query_capture_counts_the_pipeline_not_its_transaction(spans, client, key):
    """``QueryCapture`` sits beside the pipeline and reads the SDK's spans: the
    transaction span is marked as one (statement count 0) from its start."""
    from otel_db.testing import QueryCapture

    with QueryCapture() as captured, client.pipeline(transaction=True) as pipe:
        pipe.set(key, "1").get(key)
        pipe.execute()
    assert captured.count == 1
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 1
