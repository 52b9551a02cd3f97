"""The contract's db.client.* metrics from real pools, read with an in-memory reader."""

from __future__ import annotations

import gc
import uuid

import psycopg2.pool
import pytest
import redis
import sqlalchemy as sa
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import (
    AlwaysOffExemplarFilter,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_db import attributes as attr
from otel_db.metrics import instruments
from otel_db.pools.snapshot import POOL_NAMES
from tests.conftest import POSTGRES_URL, REDIS_URL

POOL = attr.DB_CLIENT_CONNECTION_POOL_NAME
SA_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture(params=["always_off", "trace_based"])
def reader(request, otel_session):
    """A reader on its own provider; with the distro's default exemplar filter
    (``always_off``: statements record through the shared-attributes histograms) and the
    SDK's (``trace_based``: every record takes the SDK's public path)."""
    reader = InMemoryMetricReader()
    exemplar_filter = (
        AlwaysOffExemplarFilter() if request.param == "always_off" else TraceBasedExemplarFilter()
    )
    provider = MeterProvider(metric_readers=[reader], exemplar_filter=exemplar_filter)
    recorder = instruments.add_recorder(provider)
    yield reader
    instruments.remove_recorder(recorder)
    provider.shutdown()


def _metrics(reader) -> dict[str, object]:
    data = reader.get_metrics_data()
    out: dict[str, object] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            if scope.scope.name == "otel_db":
                for metric in scope.metrics:
                    out[metric.name] = metric
    return out


def _points(metric, pool_name: str) -> list:
    return [p for p in metric.data.data_points if p.attributes.get(POOL) == pool_name]


@pytest.mark.postgres
def test_sqlalchemy_queue_pool(spans, reader):
    engine = sa.create_engine(SA_URL, pool_size=2, max_overflow=1)
    try:
        with engine.connect() as first, engine.connect() as second:
            first.execute(sa.text("SELECT 1"))
            second.execute(sa.text("SELECT 2"))
            metrics = _metrics(reader)
            name = POOL_NAMES.peek(engine.pool)
            assert name is not None and name.startswith("127.0.0.1:5432/test")
            count = metrics["db.client.connection.count"]
            assert count.unit == "{connection}"
            states = {
                p.attributes["db.client.connection.state"]: p.value for p in _points(count, name)
            }
            assert states == {"used": 2, "idle": 0}
            assert [p.value for p in _points(metrics["db.client.connection.max"], name)] == [3]
            assert [p.value for p in _points(metrics["db.client.connection.idle.max"], name)] == [2]
            pending = _points(metrics["db.client.connection.pending_requests"], name)
            assert [p.value for p in pending] == [0]
        metrics = _metrics(reader)
        for histogram in ("wait_time", "create_time", "use_time"):
            metric = metrics[f"db.client.connection.{histogram}"]
            assert metric.unit == "s"
            (point,) = _points(metric, name)
            assert point.count == 2, histogram
        duration = metrics["db.client.operation.duration"]
        assert duration.unit == "s"
        points = [
            p
            for p in duration.data.data_points
            if p.attributes.get(attr.DB_SYSTEM_NAME) == "postgresql"
        ]
        assert sum(p.count for p in points) >= 2
        assert list(points[0].explicit_bounds) == list(instruments.OPERATION_DURATION_BUCKETS)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_sqlalchemy_create_time_counts_only_checkouts_that_opened_a_connection(spans, reader):
    """Reusing a pooled connection is a wait but no creation; a checkout that reconnects
    an invalidated entry (the pool's size unchanged) opened a new connection."""
    engine = sa.create_engine(SA_URL, pool_size=2, max_overflow=0)
    try:
        for marker in ("first", "reused"):
            with engine.connect() as conn:
                conn.execute(sa.text(f"SELECT 1 AS create_time_{marker}"))
        name = POOL_NAMES.peek(engine.pool)
        metrics = _metrics(reader)
        (wait,) = _points(metrics["db.client.connection.wait_time"], name)
        (created,) = _points(metrics["db.client.connection.create_time"], name)
        assert (wait.count, created.count) == (2, 1)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1 AS create_time_invalidated"))
            conn.invalidate()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1 AS create_time_reconnected"))
        assert engine.pool.checkedin() == 1  # the same entry, reconnected
        metrics = _metrics(reader)
        (wait,) = _points(metrics["db.client.connection.wait_time"], name)
        (created,) = _points(metrics["db.client.connection.create_time"], name)
        assert (wait.count, created.count) == (4, 2)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_sqlalchemy_pending_requests_count_a_waiting_checkout(spans, reader):
    import threading
    import time

    engine = sa.create_engine(SA_URL, pool_size=1, max_overflow=0, pool_timeout=10)
    try:
        held = engine.connect()
        held.execute(sa.text("SELECT 1 AS pending_marker"))  # names the pool
        name = POOL_NAMES.peek(engine.pool)

        def wait_for_a_connection() -> None:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        waiter = threading.Thread(target=wait_for_a_connection)
        waiter.start()
        pending = []
        for _ in range(500):  # bounded: at most ~5 s
            pending = _points(_metrics(reader)["db.client.connection.pending_requests"], name)
            if [p.value for p in pending] == [1]:
                break
            time.sleep(0.01)
        assert [p.value for p in pending] == [1]
        held.close()
        waiter.join(timeout=10)
        assert not waiter.is_alive()
        pending = _points(_metrics(reader)["db.client.connection.pending_requests"], name)
        assert [p.value for p in pending] == [0]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_sqlalchemy_checkout_timeout_is_counted(spans, reader):
    engine = sa.create_engine(SA_URL, pool_size=1, max_overflow=0, pool_timeout=0.05)
    try:
        with engine.connect() as held:
            held.execute(sa.text("SELECT 1"))
            name = POOL_NAMES.peek(engine.pool)
            with pytest.raises(sa.exc.TimeoutError):
                engine.connect()
        (point,) = _points(_metrics(reader)["db.client.connection.timeouts"], name)
        assert point.value == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_psycopg2_pool(spans, reader):
    pool = psycopg2.pool.ThreadedConnectionPool(1, 2, POSTGRES_URL)
    try:
        conn = pool.getconn()
        other = pool.getconn()
        with pytest.raises(psycopg2.pool.PoolError):
            pool.getconn()
        metrics = _metrics(reader)
        name = next(
            p.attributes[POOL]
            for p in metrics["db.client.connection.timeouts"].data.data_points
            if p.attributes[POOL].startswith("127.0.0.1:5432/test")
        )
        states = {
            p.attributes["db.client.connection.state"]: p.value
            for p in _points(metrics["db.client.connection.count"], name)
        }
        assert states == {"used": 2, "idle": 0}
        pool.putconn(conn)
        pool.putconn(other)
        (use,) = _points(_metrics(reader)["db.client.connection.use_time"], name)
        assert use.count == 2
    finally:
        pool.closeall()


@pytest.mark.redis
def test_redis_pool_and_operation_duration(spans, reader):
    pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=3, timeout=5)
    client = redis.Redis(connection_pool=pool)
    try:
        client.get(f"otel_db:metrics:{uuid.uuid4().hex}")
        (span,) = [s for s in spans.db_spans() if POOL in s.attributes]
        name = span.attributes[POOL]
        metrics = _metrics(reader)
        states = {
            p.attributes["db.client.connection.state"]: p.value
            for p in _points(metrics["db.client.connection.count"], name)
        }
        assert states == {"used": 0, "idle": 1}
        assert [p.value for p in _points(metrics["db.client.connection.max"], name)] == [3]
        assert _points(metrics["db.client.connection.wait_time"], name)[0].count == 1
        assert _points(metrics["db.client.connection.use_time"], name)[0].count == 1
        gets = [
            p
            for p in metrics["db.client.operation.duration"].data.data_points
            if p.attributes.get(attr.DB_SYSTEM_NAME) == "redis"
            and p.attributes.get(attr.DB_OPERATION_NAME) == "GET"
        ]
        assert sum(p.count for p in gets) == 1
    finally:
        pool.disconnect()
        del client, pool


def test_dropped_pools_leave_the_gauges(spans, reader):
    from otel_db.metrics import pool_registry

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    client.close()
    del client
    gc.collect()
    names = {state.name for state in pool_registry.states()}
    assert not any(name.endswith("/0#999999") for name in names)  # smoke: readable
    assert len(pool_registry._pools) < 1000  # weakly held: bounded by live pools


@pytest.mark.redis
def test_redis_pending_requests_count_a_waiting_checkout(spans, reader):
    import threading
    import time

    pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=1, timeout=10)
    client = redis.Redis(connection_pool=pool)
    try:
        client.ping()  # names the pool
        name = POOL_NAMES.peek(pool)
        held = pool.get_connection()
        waiter = threading.Thread(target=client.ping)
        waiter.start()
        pending = []
        for _ in range(500):  # bounded: at most ~5 s
            pending = _points(_metrics(reader)["db.client.connection.pending_requests"], name)
            if [p.value for p in pending] == [1]:
                break
            time.sleep(0.01)
        assert [p.value for p in pending] == [1]
        pool.release(held)
        waiter.join(timeout=10)
        assert not waiter.is_alive()
        metrics = _metrics(reader)
        pending = _points(metrics["db.client.connection.pending_requests"], name)
        assert [p.value for p in pending] == [0]
        # Three checkouts (ping, held, the waiter's ping), each with one wait and one use.
        for histogram in ("wait_time", "use_time"):
            (point,) = _points(metrics[f"db.client.connection.{histogram}"], name)
            assert point.count == 3, histogram
        (created,) = _points(metrics["db.client.connection.create_time"], name)
        assert created.count == 1
    finally:
        pool.disconnect()
        del client, pool


@pytest.mark.redis
def test_redis_suppressed_instrumentation_records_no_duration_and_no_transaction(spans, reader):
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    client = redis.Redis.from_url(REDIS_URL)
    key = f"otel_db:metrics:{uuid.uuid4().hex}"
    try:
        with suppress_instrumentation():
            client.get(key)
            with client.pipeline(transaction=True) as pipe:
                pipe.get(key).get(key)
                pipe.execute()
        assert spans.finished() == []
        metrics = _metrics(reader)
        duration = metrics.get("db.client.operation.duration")
        redis_points = [
            p
            for p in (duration.data.data_points if duration else ())
            if p.attributes.get(attr.DB_SYSTEM_NAME) == "redis"
        ]
        assert redis_points == []
    finally:
        client.close()
