"""Pool attributes for redis-py pools, against the real Redis."""

from __future__ import annotations

import threading
import uuid

import pytest
import redis
from opentelemetry import trace

from otel_db import attributes as attr
from otel_db.pools.snapshot import POOL_EXHAUSTED_EVENT
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis

POOL_KEYS = attr.POOL_ATTRIBUTES


def _commands(spans, name: str):
    return [s for s in spans.db_spans() if s.attributes.get(attr.DB_OPERATION_NAME) == name]


def test_five_threads_on_a_blocking_pool_of_two(spans):
    pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=2, timeout=10)
    client = redis.Redis(connection_pool=pool)
    empty_key = f"otel_db:pool:{uuid.uuid4().hex}"
    errors: list[BaseException] = []
    try:

        def work() -> None:
            try:
                for _ in range(3):
                    client.blpop([empty_key], timeout=0.05)  # waits 50 ms on the server
            except BaseException as error:  # surfaced below
                errors.append(error)

        threads = [threading.Thread(target=work) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors
        statements = _commands(spans, "BLPOP")
        assert len(statements) == 15
        for span in statements:
            attributes = span.attributes
            assert all(key in attributes for key in POOL_KEYS), attributes
            assert attributes[attr.DB_CLIENT_CONNECTION_POOL_NAME].startswith("127.0.0.1:6379/0")
            assert attributes[attr.POOL_MAX] == 2
            assert 1 <= attributes[attr.POOL_USED] <= attributes[attr.POOL_MAX]
            assert 0 <= attributes[attr.POOL_IDLE] <= 1
        assert any(s.attributes[attr.POOL_UTILIZATION] == 1.0 for s in statements)
        # Three of five threads must queue behind a 50 ms BLPOP at first: tens of ms.
        assert max(s.attributes[attr.POOL_WAIT_MS] for s in statements) >= 10
    finally:
        pool.disconnect()


def test_plain_connection_pool(spans):
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
        (span,) = _commands(spans, "PING")
        assert span.attributes[attr.POOL_USED] == 1
        assert span.attributes[attr.POOL_MAX] == client.connection_pool.max_connections
        assert attr.POOL_WAIT_MS in span.attributes
    finally:
        client.close()


def test_held_connection_of_a_watch_pipeline_has_pool_facts(spans):
    client = redis.Redis.from_url(REDIS_URL)
    key = f"otel_db:pool:{uuid.uuid4().hex}"
    try:
        with client.pipeline() as pipe:
            pipe.watch(key)
            pipe.multi()
            pipe.set(key, "1")
            pipe.execute()
        pipeline_spans = [s for s in spans.db_spans() if "SET" in s.name or "MULTI" in s.name]
        assert pipeline_spans
        for span in pipeline_spans:
            assert span.attributes[attr.POOL_USED] == 1, span.name
    finally:
        client.delete(key)
        client.close()


def test_exhaustion_is_recorded_on_the_waiting_span_and_the_app_gets_redis_error(spans):
    pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=1, timeout=0.05)
    client = redis.Redis(connection_pool=pool)
    try:
        held = pool.get_connection()
        with (
            trace.get_tracer("t").start_as_current_span("handler"),
            pytest.raises(redis.ConnectionError, match="No connection available"),
        ):
            client.get("otel_db:pool:never")
        pool.release(held)
        (waiting,) = _commands(spans, "GET")
        assert POOL_EXHAUSTED_EVENT in [event.name for event in waiting.events]
        assert "exception" in [event.name for event in waiting.events]
        assert waiting.status.status_code == trace.StatusCode.ERROR
        assert waiting.attributes[attr.ERROR_TYPE]
    finally:
        pool.disconnect()


def test_single_connection_client_statements_have_pool_facts(spans):
    from otel_db.pools.checkouts import CHECKOUTS

    client = redis.Redis.from_url(REDIS_URL, single_connection_client=True)
    held = client.connection
    try:
        client.ping()
        client.ping()
        assert CHECKOUTS.holds(held)  # registered when a statement first ran on it
        pings = _commands(spans, "PING")
        assert len(pings) == 2
        for span in pings:
            assert span.attributes[attr.POOL_USED] == 1
            assert attr.POOL_WAIT_MS in span.attributes
    finally:
        client.close()
    assert not CHECKOUTS.holds(held)


def test_checkout_facts_leave_the_connection_when_it_goes_back(spans):
    from otel_db.pools import redis_pool

    pool = redis.ConnectionPool.from_url(REDIS_URL)
    client = redis.Redis(connection_pool=pool)
    try:
        for _ in range(3):
            client.get("otel_db:pool:never")
        (connection,) = pool._available_connections
        assert not hasattr(connection, redis_pool.CHECKOUT_ATTRIBUTE)
        state = redis_pool.pool_state(pool)
        assert (
            state is not None
            and state.name
            == _commands(spans, "GET")[0].attributes[attr.DB_CLIENT_CONNECTION_POOL_NAME]
        )
        assert len(state.pending) == 0
        assert list(state.operations) == ["GET"]  # duration attributes: once per command
    finally:
        pool.disconnect()


def test_a_copied_pool_gets_its_own_state(spans):
    import copy

    from otel_db.pools import redis_pool

    pool = redis.ConnectionPool.from_url(REDIS_URL)
    try:
        redis.Redis(connection_pool=pool).ping()
        copied = copy.copy(pool)
        state, copied_state = redis_pool.pool_state(pool), redis_pool.pool_state(copied)
        assert state is not None and copied_state is not None
        assert copied_state is not state
        assert copied_state.pool_ref() is copied
    finally:
        pool.disconnect()


def test_async_pool_facts_and_checkout_cleanup(spans):
    import asyncio

    import redis.asyncio as aioredis

    from otel_db.pools import redis_pool

    async def run() -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            await client.get("otel_db:pool:never")
            await client.get("otel_db:pool:never")
            for connection in client.connection_pool._available_connections:
                assert not hasattr(connection, redis_pool.CHECKOUT_ATTRIBUTE)
        finally:
            await client.aclose()

    asyncio.run(run())
    gets = _commands(spans, "GET")
    assert len(gets) == 2
    for span in gets:
        assert all(key in span.attributes for key in POOL_KEYS), span.attributes


def test_a_pool_that_takes_no_attributes_keeps_its_state_aside(spans):
    from otel_db.pools import redis_pool

    class NoAttributePool(redis.ConnectionPool):
        def __setattr__(self, name: str, value: object) -> None:
            if name == redis_pool.STATE_ATTRIBUTE:
                raise AttributeError(name)
            super().__setattr__(name, value)

    pool = NoAttributePool.from_url(REDIS_URL)
    client = redis.Redis(connection_pool=pool)
    try:
        client.ping()
        client.ping()
        assert not hasattr(pool, redis_pool.STATE_ATTRIBUTE)
        state = redis_pool.pool_state(pool)
        assert state is not None and state is redis_pool._states.get(pool)
        pings = _commands(spans, "PING")
        assert len(pings) == 2
        assert all(s.attributes[attr.DB_CLIENT_CONNECTION_POOL_NAME] == state.name for s in pings)
    finally:
        pool.disconnect()


def test_a_connection_without_a_dict_is_tracked_in_the_weak_tables(spans):
    import time

    from otel_db.metrics import pool_events
    from otel_db.pools import redis_pool
    from otel_db.pools.checkouts import CHECKOUTS

    class SlotConnection:
        __slots__ = ("__weakref__",)

    pool = redis.ConnectionPool.from_url(REDIS_URL)
    try:
        state = redis_pool.tracked_state(pool)
        assert state is not None
        connection = SlotConnection()
        redis_pool._checked_out(state, pool, connection, time.perf_counter(), -1)
        assert CHECKOUTS.holds(connection)
        assert connection in pool_events._in_use
        redis_pool._released(connection)
        assert not CHECKOUTS.holds(connection)
        assert connection not in pool_events._in_use
    finally:
        pool.disconnect()
