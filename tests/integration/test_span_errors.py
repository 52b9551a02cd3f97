"""Failed statements carry status code, error.type, category and retryability, against
the real servers, through SQLAlchemy and through the raw drivers; their messages are
scrubbed of the values they quote."""

from __future__ import annotations

import sqlite3
import threading
import uuid

import psycopg2
import pytest
import redis
import sqlalchemy as sa

from otel_db import attributes as attr
from tests.conftest import MARIADB_SQLALCHEMY_URL, POSTGRES_URL, REDIS_URL

PG_SQLALCHEMY = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
SECRET = "alice-918273@example.com"


def _failed(spans):
    return [
        s
        for s in spans.db_spans()
        if s.status.status_code.name == "ERROR" and s.attributes.get(attr.DB_QUERY_TEXT)
    ]


def _assert_scrubbed(span):
    exported = [span.name, span.status.description or "", str(dict(span.attributes))]
    exported += [str(dict(event.attributes)) for event in span.events]
    assert not any(SECRET in field for field in exported), exported


@pytest.fixture
def pg_table():
    name = f"otel_db_err_{uuid.uuid4().hex[:8]}"
    with psycopg2.connect(POSTGRES_URL) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, email text UNIQUE)")
    yield name
    with psycopg2.connect(POSTGRES_URL) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.postgres
def test_unique_violation_through_sqlalchemy(spans, pg_table):
    engine = sa.create_engine(PG_SQLALCHEMY)
    insert = sa.text(f"INSERT INTO {pg_table} (id, email) VALUES (:id, :email)")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"id": 1, "email": SECRET})
        conn.execute(insert, {"id": 2, "email": SECRET})
    engine.dispose()
    (span,) = _failed(spans)
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "23505"
    assert span.attributes[attr.ERROR_TYPE] == "psycopg2.errors.UniqueViolation"
    assert span.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert span.attributes[attr.ERROR_RETRYABLE] is False
    _assert_scrubbed(span)


@pytest.mark.postgres
def test_unique_violation_through_raw_psycopg2(spans, pg_table):
    conn = psycopg2.connect(POSTGRES_URL)
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {pg_table} (id, email) VALUES (1, %s)", (SECRET,))
    with pytest.raises(psycopg2.errors.UniqueViolation):
        cur.execute(f"INSERT INTO {pg_table} (id, email) VALUES (2, '{SECRET}')")
    conn.close()
    (span,) = _failed(spans)
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "23505"
    assert span.attributes[attr.ERROR_TYPE] == "psycopg2.errors.UniqueViolation"
    assert span.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert "unique constraint" in span.status.description
    _assert_scrubbed(span)


@pytest.mark.postgres
def test_deadlock_is_retryable(spans, pg_table):
    with psycopg2.connect(POSTGRES_URL) as conn, conn.cursor() as cur:
        cur.execute(f"INSERT INTO {pg_table} (id, email) VALUES (1, 'a'), (2, 'b')")
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def worker(first: int, second: int) -> None:
        conn = psycopg2.connect(POSTGRES_URL)
        try:
            cur = conn.cursor()
            cur.execute("SET lock_timeout = '10s'")
            cur.execute(f"UPDATE {pg_table} SET email = email WHERE id = %s", (first,))
            barrier.wait()
            cur.execute(f"UPDATE {pg_table} SET email = email WHERE id = %s", (second,))
            conn.commit()
        except psycopg2.Error as error:
            errors.append(error)
            conn.rollback()
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=pair) for pair in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [type(e).__name__ for e in errors] == ["DeadlockDetected"]
    (span,) = _failed(spans)
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "40P01"
    assert span.attributes[attr.ERROR_CATEGORY] == "deadlock"
    assert span.attributes[attr.ERROR_RETRYABLE] is True


@pytest.mark.redis
def test_redis_wrongtype(spans):
    client = redis.Redis.from_url(REDIS_URL)
    key = f"otel_db_err_{uuid.uuid4().hex[:8]}"
    client.set(key, SECRET)
    with pytest.raises(redis.ResponseError):
        client.lpush(key, SECRET)
    client.delete(key)
    client.close()
    (span,) = [s for s in spans.db_spans() if s.status.status_code.name == "ERROR"]
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "WRONGTYPE"
    assert span.attributes[attr.ERROR_TYPE] == "redis.exceptions.ResponseError"
    assert span.attributes[attr.ERROR_CATEGORY] == "other"
    _assert_scrubbed(span)


def test_sqlite3_constraint_and_no_such_column(spans):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE users (email TEXT UNIQUE)")
    conn.execute("INSERT INTO users VALUES (?)", (SECRET,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(f"INSERT INTO users VALUES ('{SECRET}')")
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("SELECT unknown_col_x FROM users")  # an identifier: kept in the text
    conn.close()
    unique, column = _failed(spans)
    assert unique.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert unique.attributes[attr.DB_RESPONSE_STATUS_CODE] == "SQLITE_CONSTRAINT_UNIQUE"
    assert unique.attributes[attr.ERROR_TYPE] == "sqlite3.IntegrityError"
    assert column.attributes[attr.ERROR_CATEGORY] == "syntax"
    assert "unknown_col_x" not in column.status.description
    assert "no such column" in column.events[0].attributes["exception.message"]
    _assert_scrubbed(unique)


@pytest.mark.mariadb
def test_mariadb_duplicate_entry_through_sqlalchemy(spans):
    engine = sa.create_engine(MARIADB_SQLALCHEMY_URL)
    table = f"otel_db_err_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {table} (email VARCHAR(100) UNIQUE)"))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            for _ in range(2):
                conn.execute(sa.text(f"INSERT INTO {table} VALUES (:e)"), {"e": SECRET})
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
    (span,) = _failed(spans)
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "1062"
    assert span.attributes[attr.ERROR_TYPE] == "pymysql.err.IntegrityError"
    assert span.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    _assert_scrubbed(span)
