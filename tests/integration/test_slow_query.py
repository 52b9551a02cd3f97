"""Slow-query flags with the session's 200 ms threshold, against the real PostgreSQL."""

from __future__ import annotations

import psycopg2
import pytest
import sqlalchemy as sa

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres


def _statement(spans, marker: str):
    (span,) = [
        s for s in spans.db_spans() if marker in (s.attributes.get(attr.DB_QUERY_TEXT) or "")
    ]
    return span


def test_threshold_200ms_flags_pg_sleep_not_select_1(spans):
    assert spans.settings.slow_query_threshold_ms == 200
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_sleep(0.3) AS slow_marker"))
            conn.execute(sa.text("SELECT 1 AS fast_marker"))
    finally:
        engine.dispose()
    slow = _statement(spans, "slow_marker")
    assert slow.attributes[attr.QUERY_SLOW] is True
    assert slow.attributes[attr.QUERY_SLOW_THRESHOLD_MS] == 200.0
    fast = _statement(spans, "fast_marker")
    assert attr.QUERY_SLOW not in fast.attributes
    assert attr.QUERY_SLOW_THRESHOLD_MS not in fast.attributes


def test_driver_spans_are_flagged_too(spans):
    connection = psycopg2.connect(POSTGRES_URL)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(0.3) AS raw_slow_marker")
            cursor.execute("SELECT 1 AS raw_fast_marker")
    finally:
        connection.close()
    assert _statement(spans, "raw_slow_marker").attributes[attr.QUERY_SLOW] is True
    assert attr.QUERY_SLOW not in _statement(spans, "raw_fast_marker").attributes


def test_transaction_spans_are_not_slow_queries(spans):
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_sleep(0.15) AS half_one"))
            conn.execute(sa.text("SELECT pg_sleep(0.15) AS half_two"))
    finally:
        engine.dispose()
    (half,) = [
        s for s in spans.db_spans() if "half_one" in (s.attributes.get(attr.DB_QUERY_TEXT) or "")
    ]
    (tx,) = [s for s in spans.finished() if s.context.span_id == half.parent.span_id]
    assert attr.TRANSACTION_STATEMENT_COUNT in tx.attributes
    assert (tx.end_time - tx.start_time) / 1e6 >= 200
    assert attr.QUERY_SLOW not in tx.attributes
