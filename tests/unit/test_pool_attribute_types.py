"""Pool attributes carry only values of the types the contract names: whatever a pool
object holds (a test's Mock, a subclass's own bookkeeping) never reaches the SDK, which
would log a warning for each such value."""

from __future__ import annotations

import logging
from unittest import mock

from opentelemetry.sdk.trace import TracerProvider

from otel_db import attributes as attr
from otel_db.pools import psycopg2_pool
from otel_db.pools.snapshot import PoolSnapshot, count_value, number_value


def _valid(value: object) -> bool:
    return type(value) in (str, int, float, bool)


def test_values_of_the_wrong_type_are_left_out(caplog):
    snapshot = PoolSnapshot(
        name=mock.Mock(),  # type: ignore[arg-type]
        size=mock.Mock(),  # type: ignore[arg-type]
        max=mock.MagicMock(),  # type: ignore[arg-type]
        used=True,
        idle=3,
        wait_ms=mock.Mock(),  # type: ignore[arg-type]
    )
    attributes = snapshot.attributes()
    assert attributes == {attr.POOL_IDLE: 3}
    span = TracerProvider().get_tracer("t").start_span("s")
    with caplog.at_level(logging.WARNING):
        span.set_attributes(attributes)
    span.end()
    assert caplog.records == []


def test_real_counts_are_kept():
    snapshot = PoolSnapshot(name="p", size=2, max=4, used=1, idle=1, wait_ms=1)
    assert snapshot.attributes() == {
        attr.DB_CLIENT_CONNECTION_POOL_NAME: "p",
        attr.POOL_SIZE: 2,
        attr.POOL_USED: 1,
        attr.POOL_IDLE: 1,
        attr.POOL_MAX: 4,
        attr.POOL_UTILIZATION: 0.25,
        attr.POOL_WAIT_MS: 1.0,
    }
    assert all(_valid(v) for v in snapshot.attributes().values())
    assert count_value(False) is None and number_value(True) is None
    assert count_value(7) == 7 and number_value(0.5) == 0.5


def test_psycopg2_pool_with_odd_bounds_gives_typed_attributes():
    class OddPool:  # a psycopg2 pool subclass keeping its bounds its own way
        minconn = mock.Mock()
        maxconn = "10"
        _used = {1: 1}
        _pool: list[object] = []
        _kwargs: dict[str, object] = {}
        _args = ()

    pool = OddPool()
    attributes = psycopg2_pool.read_pool(pool, 1.5).attributes()
    assert all(_valid(v) for v in attributes.values()), attributes
    assert attributes[attr.POOL_USED] == 1 and attr.POOL_SIZE not in attributes
    assert attr.POOL_MAX not in attributes
