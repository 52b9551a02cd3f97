"""psycopg2's own transactions (autocommit off): spans and outcomes, real PostgreSQL."""

from __future__ import annotations

import psycopg2
import pytest
from opentelemetry import trace

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres


def _tx(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


def _statements(spans):
    return [s for s in spans.db_spans() if attr.TRANSACTION_STATEMENT_COUNT not in s.attributes]


@pytest.fixture
def conn():
    connection = psycopg2.connect(POSTGRES_URL)
    yield connection
    connection.close()


def test_commit(spans, conn):
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.execute("SELECT 2")
    conn.commit()
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert tx.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 2
    statements = _statements(spans)
    assert len(statements) == 2
    for span in statements:
        assert span.parent.span_id == tx.context.span_id
        assert span.attributes[attr.TRANSACTION_ID] == tx.attributes[attr.TRANSACTION_ID]
        assert span.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED


def test_rollback_and_with_block(spans, conn):
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    conn.rollback()
    with pytest.raises(psycopg2.errors.DivisionByZero), conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1 / 0")
    outcomes = [s.attributes[attr.TRANSACTION_OUTCOME] for s in _tx(spans)]
    # The first ran only a SELECT: released; the second failed: rolled back.
    assert outcomes == [attr.OUTCOME_RELEASED, attr.OUTCOME_ROLLED_BACK]
    assert [s.attributes[attr.TRANSACTION_OUTCOME] for s in _statements(spans)] == [
        attr.OUTCOME_RELEASED,
        attr.OUTCOME_ROLLED_BACK,
    ]


def test_with_block_commits(spans, conn):
    with conn, conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    ((tx,), (statement,)) = _tx(spans), _statements(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert statement.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED


def test_autocommit_statements_are_not_in_a_transaction(spans, conn):
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert _tx(spans) == []
    (statement,) = _statements(spans)
    assert attr.TRANSACTION_ID not in statement.attributes


def test_killed_connection(spans, conn):
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    killer = psycopg2.connect(POSTGRES_URL)
    killer.autocommit = True
    with killer.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
    killer.close()
    with pytest.raises(psycopg2.OperationalError), conn.cursor() as cursor:
        cursor.execute("SELECT 1")
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] in (
        attr.OUTCOME_UNKNOWN,
        attr.OUTCOME_ROLLED_BACK,
    )
    mine = [s for s in _statements(spans) if s.attributes.get(attr.TRANSACTION_ID)]
    assert len(mine) == 2
    assert {s.attributes[attr.TRANSACTION_OUTCOME] for s in mine} <= {
        attr.OUTCOME_UNKNOWN,
        attr.OUTCOME_ROLLED_BACK,
    }
    assert not trace.get_current_span().is_recording()  # no transaction context left behind
