"""``released``: a transaction that ended without COMMIT, wrote nothing and did not fail.

Against the real PostgreSQL: a SQLAlchemy ``Session`` that only reads and is closed
(every read-only web request) is ``released`` on its transaction span and on every
statement; discarded writes, failures and statements that may write stay ``rolled_back``.
"""

from __future__ import annotations

import uuid

import psycopg2
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import StatusCode
from sqlalchemy.orm import Session

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

SA_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
TABLE = "otel_db_released_tx"


@pytest.fixture(scope="module")
def engine():
    engine = sa.create_engine(SA_URL, pool_size=2)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE IF NOT EXISTS {TABLE} (k text PRIMARY KEY)"))
    yield engine
    engine.dispose()


def _transactions(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


def _statements_of(spans, transaction):
    tx_id = transaction.attributes[attr.TRANSACTION_ID]
    return [
        s
        for s in spans.db_spans()
        if s is not transaction
        and attr.TRANSACTION_STATEMENT_COUNT not in s.attributes
        and s.attributes.get(attr.TRANSACTION_ID) == tx_id
    ]


def _only_transaction(spans):
    (transaction,) = _transactions(spans)
    return transaction, _statements_of(spans, transaction)


def test_read_only_session_closed_without_commit_is_released(spans, engine):
    spans.clear()
    with trace.get_tracer("t").start_as_current_span("GET /items"), Session(engine) as session:
        session.execute(sa.text(f"SELECT k FROM {TABLE} WHERE k = :k"), {"k": "a"}).all()
        session.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar()
    transaction, statements = _only_transaction(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_RELEASED
    assert transaction.status.status_code is not StatusCode.ERROR
    assert len(statements) == 2
    assert {s.attributes[attr.TRANSACTION_OUTCOME] for s in statements} == {attr.OUTCOME_RELEASED}


def test_discarded_write_stays_rolled_back(spans, engine):
    spans.clear()
    with Session(engine) as session:
        session.execute(sa.text(f"SELECT k FROM {TABLE} LIMIT 1")).all()
        session.execute(sa.text(f"INSERT INTO {TABLE} (k) VALUES (:k)"), {"k": uuid.uuid4().hex})
        session.rollback()
    transaction, statements = _only_transaction(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert [s.attributes[attr.TRANSACTION_OUTCOME] for s in statements] == [
        attr.OUTCOME_ROLLED_BACK,
        attr.OUTCOME_ROLLED_BACK,
    ]


def test_failed_read_only_transaction_stays_rolled_back(spans, engine):
    spans.clear()
    with pytest.raises(sa.exc.DataError), Session(engine) as session:
        session.execute(sa.text("SELECT 1 / 0")).all()
    transaction, statements = _only_transaction(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert transaction.status.status_code is StatusCode.ERROR
    assert statements[0].attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK


def test_exception_in_a_read_only_session_stays_rolled_back(spans, engine):
    spans.clear()
    with pytest.raises(KeyError), engine.begin() as conn:
        conn.execute(sa.text(f"SELECT k FROM {TABLE} LIMIT 1")).all()
        raise KeyError("application failure")
    transaction, _ = _only_transaction(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK


@pytest.mark.parametrize(
    "statement",
    [
        f"SELECT k FROM {TABLE} FOR UPDATE",
        f"WITH gone AS (DELETE FROM {TABLE} WHERE k = 'none' RETURNING k) SELECT k FROM gone",
        "SELECT nextval('otel_db_released_seq')",
        "SELECT otel_db_released_fn()",
    ],
)
def test_statements_that_may_write_stay_rolled_back(spans, engine, statement):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SEQUENCE IF NOT EXISTS otel_db_released_seq"))
        conn.execute(
            sa.text(
                "CREATE OR REPLACE FUNCTION otel_db_released_fn() RETURNS int "
                "LANGUAGE sql AS 'SELECT 1'"
            )
        )
    spans.clear()
    with Session(engine) as session:
        session.execute(sa.text(statement)).all()
    transaction, statements = _only_transaction(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert statements[0].attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK


def test_read_only_savepoint_rolled_back_is_released_inside_a_commit(spans, engine):
    spans.clear()
    with Session(engine) as session:
        session.execute(sa.text(f"INSERT INTO {TABLE} (k) VALUES (:k)"), {"k": uuid.uuid4().hex})
        nested = session.begin_nested()
        session.execute(sa.text(f"SELECT count(*) AS in_savepoint FROM {TABLE}")).scalar()
        nested.rollback()
        session.commit()
    by_name = {s.name: s for s in _transactions(spans)}
    savepoint = next(s for name, s in by_name.items() if name.startswith("SAVEPOINT"))
    root = next(s for name, s in by_name.items() if name.startswith("TRANSACTION"))
    assert savepoint.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_RELEASED
    assert root.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    outcomes = {
        (s.attributes.get(attr.DB_QUERY_TEXT) or "").split()[0]: s.attributes[
            attr.TRANSACTION_OUTCOME
        ]
        for s in _statements_of(spans, root)
        if not s.name.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))
    }
    assert outcomes == {"INSERT": attr.OUTCOME_COMMITTED, "SELECT": attr.OUTCOME_RELEASED}


def test_psycopg2_read_only_transaction_is_released(spans):
    connection = psycopg2.connect(POSTGRES_URL)
    try:
        spans.clear()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 AS read_only_marker")
        connection.rollback()
        with connection.cursor() as cursor:
            cursor.callproc("now")  # a procedure call: may write
        connection.rollback()
    finally:
        connection.close()
    first, second = _transactions(spans)
    assert first.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_RELEASED
    assert second.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
