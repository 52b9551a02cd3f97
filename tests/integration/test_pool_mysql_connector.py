"""Pool attributes and metrics for mysql-connector's pools, against the real MariaDB:
``MySQLConnectionPool.get_connection()`` and ``connect(pool_name=..., pool_size=...)``."""

from __future__ import annotations

import gc
import uuid
import warnings
import weakref

import mysql.connector
import mysql.connector.pooling
import pytest
from opentelemetry import trace

from otel_db import attributes as attr
from otel_db.pools.snapshot import POOL_EXHAUSTED_EVENT
from tests.conftest import MARIADB
from tests.integration.test_metrics import _metrics, _points, reader  # noqa: F401

pytestmark = pytest.mark.mariadb
POOL = attr.DB_CLIENT_CONNECTION_POOL_NAME


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _marked(spans, marker: str):
    return [s for s in spans.db_spans() if marker in (s.attributes.get(attr.DB_QUERY_TEXT) or "")]


def _select(connection, marker: str) -> None:
    cursor = connection.cursor()
    cursor.execute(f"SELECT 1 AS {marker}")
    cursor.fetchall()
    cursor.close()


def test_pool_attributes_on_lent_connections(spans):
    name = unique("otel_db_mycp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no query-attribute warning on pooled connections
        pool = mysql.connector.pooling.MySQLConnectionPool(pool_name=name, pool_size=2, **MARIADB)
        first = pool.get_connection()
        assert isinstance(first, mysql.connector.pooling.PooledMySQLConnection)
        _select(first, "otel_db_mycp_one")
        second = pool.get_connection()
        _select(second, "otel_db_mycp_two")
        first.close()
        second.close()
        again = pool.get_connection()
        _select(again, "otel_db_mycp_again")
        again.close()
    (one,) = _marked(spans, "otel_db_mycp_one")
    (two,) = _marked(spans, "otel_db_mycp_two")
    (after,) = _marked(spans, "otel_db_mycp_again")
    for span in (one, two, after):
        a = span.attributes
        assert a[POOL] == name
        assert a[attr.POOL_SIZE] == 2
        assert a[attr.POOL_MAX] == 2
        assert a[attr.POOL_WAIT_MS] >= 0
        assert a[attr.DB_SYSTEM_NAME] in ("mysql", "mariadb")
    assert (one.attributes[attr.POOL_USED], one.attributes[attr.POOL_IDLE]) == (1, 1)
    assert one.attributes[attr.POOL_UTILIZATION] == 0.5
    assert (two.attributes[attr.POOL_USED], two.attributes[attr.POOL_IDLE]) == (2, 0)
    assert two.attributes[attr.POOL_UTILIZATION] == 1.0
    assert after.attributes[attr.POOL_USED] == 1  # both went back before
    # autocommit off: each lent connection's transaction ends when it goes back
    ended = [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]
    assert len(ended) == 3
    assert one.parent.span_id in {t.context.span_id for t in ended}


def test_connect_with_pool_name_one_span_per_statement(spans):
    name = unique("otel_db_mycp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        connection = mysql.connector.connect(pool_name=name, pool_size=1, **MARIADB)
        _select(connection, "otel_db_mycp_connect")
        connection.close()
        reused = mysql.connector.connect(pool_name=name, **MARIADB)
        _select(reused, "otel_db_mycp_reused")
        reused.close()
    (span,) = _marked(spans, "otel_db_mycp_connect")  # traced once, not twice
    assert span.attributes[POOL] == name
    assert span.attributes[attr.POOL_MAX] == 1
    assert span.attributes[attr.POOL_USED] == 1
    (reused_span,) = _marked(spans, "otel_db_mycp_reused")
    assert reused_span.attributes[POOL] == name


def test_exhaustion_is_recorded_and_the_app_gets_pool_error(spans):
    pool = mysql.connector.pooling.MySQLConnectionPool(
        pool_name=unique("otel_db_mycp"), pool_size=1, **MARIADB
    )
    held = pool.get_connection()
    with (
        trace.get_tracer("t").start_as_current_span("handler"),
        pytest.raises(mysql.connector.errors.PoolError),
    ):
        pool.get_connection()
    held.close()
    (handler,) = [s for s in spans.finished() if s.name == "handler"]
    (event,) = [e for e in handler.events if e.name == POOL_EXHAUSTED_EVENT]
    assert event.attributes[POOL] == pool.pool_name


def test_pool_metrics_and_no_state_on_the_pool(spans, reader):  # noqa: F811
    name = unique("otel_db_mycp")
    pool = mysql.connector.pooling.MySQLConnectionPool(pool_name=name, pool_size=2, **MARIADB)
    before = dict(vars(pool))
    held = pool.get_connection()
    other = pool.get_connection()
    with pytest.raises(mysql.connector.errors.PoolError):
        pool.get_connection()
    metrics = _metrics(reader)
    states = {
        p.attributes["db.client.connection.state"]: p.value
        for p in _points(metrics["db.client.connection.count"], name)
    }
    assert states == {"used": 2, "idle": 0}
    (timeouts,) = _points(metrics["db.client.connection.timeouts"], name)
    assert timeouts.value == 1
    held.close()
    other.close()
    (use,) = _points(_metrics(reader)["db.client.connection.use_time"], name)
    assert use.count == 2
    assert vars(pool).keys() == before.keys()  # nothing of otel_db's on the pool
    gone = weakref.ref(pool)
    pool._remove_connections()
    del pool, held, other
    gc.collect()
    assert gone() is None  # not kept alive by otel_db's maps
