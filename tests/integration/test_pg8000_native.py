"""pg8000's native interface (``pg8000.native.Connection.run``) against the real
PostgreSQL: statement spans with sanitized text, summary, fingerprint, returned rows,
slow and N+1 facts, error classification, and the transactions its SQL opens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pg8000.native
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from otel_db import attributes as attr
from tests.integration.test_metrics import _metrics, reader  # noqa: F401

tracer = trace.get_tracer(__name__)
PG = {"user": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test"}


def by_summary(spans, summary):
    return [s for s in spans.db_spans() if s.attributes.get(attr.DB_QUERY_SUMMARY) == summary]


def transactions(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


@pytest.fixture
def native() -> Iterator[pg8000.native.Connection]:
    connection = pg8000.native.Connection(**PG)
    yield connection
    connection.close()


@pytest.fixture
def table(native) -> str:
    name = f"otel_db_native_{uuid.uuid4().hex[:8]}"
    native.run(f"CREATE TEMP TABLE {name} (id int primary key, email text)")
    return name


@pytest.mark.postgres
def test_native_statement_spans(spans, native, table):
    native.run(f"INSERT INTO {table} VALUES (:id, :email)", id=1, email="alice.canary@example.com")
    native.run(f"INSERT INTO {table} VALUES (2, 'b'), (3, 'c')")
    rows = native.run(f"SELECT email FROM {table} WHERE id > :low AND email <> 'zz'", low=1)
    assert rows == [["b"], ["c"]]
    (select,) = by_summary(spans, f"SELECT {table}")
    assert select.kind is SpanKind.CLIENT
    assert select.name == f"SELECT {table}"
    a = select.attributes
    assert a[attr.DB_SYSTEM_NAME] == "postgresql"
    assert a[attr.DB_NAMESPACE] == "test"
    assert a[attr.SERVER_ADDRESS] == "127.0.0.1"
    assert a[attr.SERVER_PORT] == 5432
    assert a[attr.DB_QUERY_TEXT] == f"SELECT email FROM {table} WHERE id > :low AND email <> ?"
    assert len(a[attr.QUERY_FINGERPRINT]) == 16
    assert a[attr.DB_RESPONSE_RETURNED_ROWS] == 2
    inserts = by_summary(spans, f"INSERT {table}")
    assert len(inserts) == 2
    assert all(attr.DB_RESPONSE_RETURNED_ROWS not in s.attributes for s in inserts)
    assert transactions(spans) == []  # no BEGIN: every statement commits on its own


@pytest.mark.postgres
def test_native_explicit_transactions(spans, native, table):
    with tracer.start_as_current_span("request"):
        native.run("BEGIN")
        native.run(f"INSERT INTO {table} VALUES (1, 'a')")
        native.run("COMMIT")
        native.run("START TRANSACTION")
        native.run(f"UPDATE {table} SET email = 'x' WHERE id = 1")
        native.run("SAVEPOINT s1")
        native.run("ROLLBACK TO SAVEPOINT s1")  # not the end of the transaction
        native.run("ROLLBACK")
    committed, rolled_back = sorted(transactions(spans), key=lambda s: s.start_time)
    assert committed.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert rolled_back.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    (insert,) = by_summary(spans, f"INSERT {table}")
    assert insert.parent.span_id == committed.context.span_id
    assert insert.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    (update,) = by_summary(spans, f"UPDATE {table}")
    assert update.parent.span_id == rolled_back.context.span_id
    assert update.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert rolled_back.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 5
    assert native.run(f"SELECT email FROM {table}") == [["a"]]


@pytest.mark.postgres
def test_native_duplicate_key_and_refused_commit(spans, native, table):
    native.run(f"INSERT INTO {table} VALUES (1, 'alice.canary@example.com')")
    native.run("BEGIN")
    with pytest.raises(pg8000.native.DatabaseError):
        native.run(f"INSERT INTO {table} VALUES (1, 'alice.canary@example.com')")
    with pytest.raises(pg8000.native.InterfaceError):
        native.run("COMMIT")  # the server answers ROLLBACK: pg8000 raises
    failed = [s for s in spans.db_spans() if s.status.status_code is StatusCode.ERROR]
    (duplicate,) = [
        s for s in failed if s.attributes.get(attr.DB_QUERY_SUMMARY) == f"INSERT {table}"
    ]
    assert duplicate.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert duplicate.attributes[attr.DB_RESPONSE_STATUS_CODE] == "23505"
    assert duplicate.attributes[attr.ERROR_RETRYABLE] is False
    assert duplicate.attributes[attr.ERROR_TYPE] == "pg8000.exceptions.DatabaseError"
    (transaction,) = transactions(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert native.run("SELECT 1") == [[1]]  # the connection is usable: nothing left open


@pytest.mark.postgres
def test_native_n_plus_one_slow_and_prepared(spans, native):
    statement = native.prepare("SELECT oid FROM pg_class WHERE oid = :oid")
    with tracer.start_as_current_span("request"):
        for n in range(5):
            statement.run(oid=n + 1)
        native.run("SELECT pg_sleep(0.25)")
    statement.close()
    (request,) = [s for s in spans.finished() if s.name == "request"]
    assert request.attributes[attr.N_PLUS_ONE_DETECTED] is True
    assert request.attributes[attr.N_PLUS_ONE_COUNT] == 5
    assert request.attributes[attr.QUERY_COUNT] == 6
    repeated = by_summary(spans, "SELECT pg_class")
    assert len(repeated) == 5
    assert {s.attributes[attr.DB_QUERY_TEXT] for s in repeated} == {
        "SELECT oid FROM pg_class WHERE oid = $1"
    }
    assert all(s.attributes[attr.DB_RESPONSE_RETURNED_ROWS] == 0 for s in repeated)
    (slow,) = [s for s in spans.db_spans() if s.attributes.get(attr.QUERY_SLOW)]
    assert "pg_sleep" in slow.attributes[attr.DB_QUERY_TEXT]


@pytest.mark.postgres
def test_native_close_rolls_back_the_open_transaction(spans, table):
    connection = pg8000.native.Connection(**PG)
    connection.run("BEGIN")
    connection.run("SELECT 1")
    connection.close()
    (transaction,) = transactions(spans)
    # nothing that can write ran: the rollback lost nothing
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_RELEASED


@pytest.mark.postgres
def test_native_operation_duration_metric(spans, native, reader):  # noqa: F811
    native.run("SELECT 1 AS otel_db_native_metric")
    with pytest.raises(pg8000.native.DatabaseError):
        native.run("SELECT * FROM otel_db_native_missing_table")
    (metric,) = [
        m for name, m in _metrics(reader).items() if name == "db.client.operation.duration"
    ]
    points = [
        p for p in metric.data.data_points if p.attributes.get(attr.DB_SYSTEM_NAME) == "postgresql"
    ]
    ok = [p for p in points if attr.ERROR_TYPE not in p.attributes]
    failed = [p for p in points if attr.ERROR_TYPE in p.attributes]
    assert sum(p.count for p in ok) == 1
    assert ok[0].attributes[attr.DB_OPERATION_NAME] == "SELECT"
    assert ok[0].attributes[attr.SERVER_PORT] == 5432
    assert sum(p.count for p in failed) == 1
    assert failed[0].attributes[attr.ERROR_TYPE] == "DatabaseError"
