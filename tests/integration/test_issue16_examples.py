"""Issue 16's examples, through the real drivers and the session pipeline.

Each statement or error below leaked a literal into an exported span before: a
string ending in a backslash, a nested comment, a double-quoted value, PostgreSQL's
``CONTEXT: JSON data`` line and a ``DETAIL: Key (...)=(...)`` value holding a newline,
sent as a bound parameter.
"""

from __future__ import annotations

import sqlite3
import uuid

import psycopg2
import pytest
import sqlalchemy as sa

from tests.conftest import MARIADB_SQLALCHEMY_URL, POSTGRES_URL, exported_fields

SECRETS = ("hunter2", "alice@example.com")
BACKSLASH_INSERT = "INSERT INTO {t} VALUES ('C:\\', 'hunter2', 'alice@example.com')"


def _assert_no_secret(spans, minimum_db_spans: int) -> None:
    assert len(spans.db_spans()) >= minimum_db_spans
    found = [
        (span.name, secret, field)
        for span in spans.finished()
        for field in exported_fields(span)
        for secret in SECRETS
        if secret in field
    ]
    assert found == []


@pytest.mark.postgres
def test_postgresql_examples(spans) -> None:
    table = f"otel_db_i16_{uuid.uuid4().hex[:8]}"
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    cursor = connection.cursor()
    cursor.execute(f"CREATE TABLE {table} (a text, b text, c text, j jsonb, UNIQUE (a))")
    try:
        spans.clear()
        cursor.execute(BACKSLASH_INSERT.format(t=table))
        cursor.execute(f"SELECT a /* x /* y */ 'hunter2' alice@example.com */ FROM {table}")
        with pytest.raises(psycopg2.Error):
            cursor.execute("SELECT %s::jsonb", ('{"a": hunter2}',))
        cursor.execute(f"INSERT INTO {table} (a) VALUES (%s)", ("x\nhunter2)y",))
        with pytest.raises(psycopg2.errors.UniqueViolation) as caught:
            cursor.execute(f"INSERT INTO {table} (a) VALUES (%s)", ("x\nhunter2)y",))
        assert "hunter2" in str(caught.value)  # the server did echo it
        _assert_no_secret(spans, minimum_db_spans=5)
    finally:
        cursor.execute(f"DROP TABLE {table}")
        connection.close()


def test_sqlite_examples(spans) -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (a TEXT, b TEXT, c TEXT)")
    spans.clear()
    connection.execute(BACKSLASH_INSERT.format(t="t"))
    rows = connection.execute('SELECT a FROM t WHERE b = "hunter2"').fetchall()
    assert rows == [("C:\\",)]  # SQLite read "hunter2" as a string: it is a literal
    with pytest.raises(sqlite3.OperationalError):
        connection.execute("SELECT * FROM 'hunter2'")
    connection.close()
    _assert_no_secret(spans, minimum_db_spans=3)


@pytest.mark.mariadb
def test_mariadb_examples(spans) -> None:
    table = f"otel_db_i16_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(MARIADB_SQLALCHEMY_URL)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (a VARCHAR(50) UNIQUE, b TEXT, c TEXT)")
    try:
        spans.clear()
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"INSERT INTO {table} VALUES ('C:\\\\', \"hunter2\", 'alice@example.com')"
            )
            rows = conn.exec_driver_sql(f'SELECT a FROM {table} WHERE b = "hunter2"').all()
            assert rows == [("C:\\",)]
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.exec_driver_sql(f"INSERT INTO {table} (a) VALUES ('C:\\\\')")
            conn.exec_driver_sql(f"INSERT INTO {table} (a) VALUES (\"hunter2\"), ('hunter2')")
        with pytest.raises(sa.exc.ProgrammingError), engine.begin() as conn:
            conn.exec_driver_sql("SELECT * FROM WHERE 'hunter2' # alice@example.com")
        _assert_no_secret(spans, minimum_db_spans=4)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {table}")
        engine.dispose()
