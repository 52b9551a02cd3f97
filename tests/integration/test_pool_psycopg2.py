"""Pool attributes for psycopg2.pool, against the real PostgreSQL."""

from __future__ import annotations

import threading
import time

import psycopg2
import psycopg2.pool
import pytest
from opentelemetry import trace

from otel_db import attributes as attr
from otel_db.pools.snapshot import POOL_EXHAUSTED_EVENT
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres


def _marked(spans, marker: str):
    return [s for s in spans.db_spans() if marker in (s.attributes.get(attr.DB_QUERY_TEXT) or "")]


def test_five_threads_on_a_threaded_pool_of_two(spans):
    pool = psycopg2.pool.ThreadedConnectionPool(1, 2, POSTGRES_URL)
    try:

        def work() -> None:
            done = 0
            deadline = time.monotonic() + 30
            while done < 3 and time.monotonic() < deadline:
                try:
                    conn = pool.getconn()
                except psycopg2.pool.PoolError:  # psycopg2's pools never wait: retry
                    time.sleep(0.005)
                    continue
                try:
                    conn.autocommit = True
                    with conn.cursor() as cursor:
                        cursor.execute("SELECT pg_sleep(0.05) AS pg_pool_marker")
                    done += 1
                finally:
                    pool.putconn(conn)

        threads = [threading.Thread(target=work) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        statements = _marked(spans, "pg_pool_marker")
        assert len(statements) == 15
        for span in statements:
            attributes = span.attributes
            # "#N" tells apart pools of one server created by earlier tests.
            assert attributes[attr.DB_CLIENT_CONNECTION_POOL_NAME].startswith("127.0.0.1:5432/test")
            assert attributes[attr.POOL_MAX] == 2
            assert attributes[attr.POOL_SIZE] == 1
            assert 1 <= attributes[attr.POOL_USED] <= 2
            assert attr.POOL_WAIT_MS in attributes
        assert any(s.attributes[attr.POOL_UTILIZATION] == 1.0 for s in statements)
    finally:
        pool.closeall()


def test_exhaustion_is_recorded_and_the_app_gets_pool_error(spans):
    pool = psycopg2.pool.SimpleConnectionPool(1, 1, POSTGRES_URL)
    try:
        held = pool.getconn()
        handler_span = trace.get_tracer("t").start_as_current_span("handler")
        with handler_span, pytest.raises(psycopg2.pool.PoolError):
            pool.getconn()
        pool.putconn(held)
        (handler,) = [s for s in spans.finished() if s.name == "handler"]
        assert POOL_EXHAUSTED_EVENT in [event.name for event in handler.events]
    finally:
        pool.closeall()
