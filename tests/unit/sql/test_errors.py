"""Error classification and message scrubbing without a server.

These cover the tables and the exception-event path, which only ever sees a type
name and a message. Classification of real driver exceptions is proven against
the real servers in tests/integration/test_error_classification.py.
"""

from __future__ import annotations

import sqlite3

import pytest

from otel_db.attributes import ERROR_CATEGORIES
from otel_db.sql.errors import (
    MAX_MESSAGE_CHARS,
    ErrorFacts,
    category_of_mysql_errno,
    category_of_sqlstate,
    classify_exception,
    classify_exception_event,
    scrub_error_message,
)


@pytest.mark.parametrize(
    ("sqlstate", "category"),
    [
        ("23505", "constraint_violation"),
        ("23503", "constraint_violation"),
        ("23502", "constraint_violation"),
        ("40P01", "deadlock"),
        ("40001", "serialization_failure"),
        ("55P03", "lock_timeout"),
        ("57014", "query_canceled"),
        ("08006", "connection"),
        ("57P01", "connection"),
        ("57P02", "connection"),
        ("57P03", "connection"),
        ("42601", "syntax"),
        ("42P01", "syntax"),
        ("42703", "syntax"),
        ("22P02", "other"),
        ("XX000", "other"),
    ],
)
def test_sqlstate_categories(sqlstate: str, category: str) -> None:
    assert category_of_sqlstate(sqlstate) == category


@pytest.mark.parametrize(
    ("errno", "category"),
    [
        *[(n, "constraint_violation") for n in (1062, 1451, 1452, 1048, 1216, 1217)],
        (1213, "deadlock"),
        (1205, "lock_timeout"),
        (1317, "query_canceled"),
        (3024, "query_canceled"),
        *[(n, "connection") for n in (2002, 2003, 2006, 2013, 4031)],
        *[(n, "syntax") for n in (1064, 1146, 1054)],
        (1366, "other"),
    ],
)
def test_mysql_categories(errno: int, category: str) -> None:
    assert category_of_mysql_errno(errno) == category


@pytest.mark.parametrize(
    ("exception_type", "message", "expected"),
    [
        ("psycopg2.errors.UniqueViolation", "duplicate key", ("23505", "constraint_violation")),
        ("psycopg2.errors.DeadlockDetected", "deadlock detected", ("40P01", "deadlock")),
        ("psycopg2.errors.SerializationFailure", "could not", ("40001", "serialization_failure")),
        ("psycopg2.errors.LockNotAvailable", "could not obtain", ("55P03", "lock_timeout")),
        ("psycopg2.errors.QueryCanceled", "canceling", ("57014", "query_canceled")),
        ("psycopg2.errors.SyntaxError", "syntax error", ("42601", "syntax")),
        ("UniqueViolation", "duplicate key", ("23505", "constraint_violation")),
        ("psycopg2.OperationalError", "server closed the connection unexpectedly",
         (None, "connection")),
        ("psycopg2.InterfaceError", "connection already closed", (None, "connection")),
        ("psycopg2.DataError", "whatever", (None, "other")),
        ("asyncpg.exceptions.UniqueViolationError", "dup", ("23505", "constraint_violation")),
        ("asyncpg.exceptions.DeadlockDetectedError", "deadlock", ("40P01", "deadlock")),
        ("sqlalchemy.exc.IntegrityError", "(psycopg2.errors.UniqueViolation) duplicate key",
         ("23505", "constraint_violation")),
        ("sqlalchemy.exc.OperationalError", '(pymysql.err.OperationalError) (1213, "Deadlock")',
         ("1213", "deadlock")),
        ("pymysql.err.IntegrityError", "(1062, \"Duplicate entry 'x' for key 'k'\")",
         ("1062", "constraint_violation")),
        ("pymysql.err.OperationalError", "(2013, 'Lost connection')", ("2013", "connection")),
        ("sqlite3.IntegrityError", "UNIQUE constraint failed: t.a",
         ("SQLITE_CONSTRAINT_UNIQUE", "constraint_violation")),
        ("sqlite3.OperationalError", "database is locked", ("SQLITE_BUSY", "lock_timeout")),
        ("sqlite3.OperationalError", 'near "x": syntax error', ("SQLITE_ERROR", "syntax")),
        ("sqlite3.OperationalError", "no such table: t", ("SQLITE_ERROR", "syntax")),
        ("redis.exceptions.ResponseError", "WRONGTYPE Operation against a key",
         ("WRONGTYPE", "other")),
        ("redis.exceptions.ResponseError", "ERR unknown command 'FOO'", ("ERR", "syntax")),
        ("redis.exceptions.ConnectionError", "Error 111 connecting", (None, "connection")),
        ("redis.exceptions.TimeoutError", "Timeout reading", (None, "connection")),
        ("redis.exceptions.WatchError", "Watched variable changed",
         (None, "serialization_failure")),
    ],
)  # fmt: skip
def test_classify_exception_event(exception_type, message, expected) -> None:
    facts = classify_exception_event(exception_type, message)
    assert facts is not None
    assert (facts.status_code, facts.category) == expected
    assert facts.retryable is (facts.category in ("deadlock", "serialization_failure"))
    assert facts.category in ERROR_CATEGORIES


@pytest.mark.parametrize(
    ("exception_type", "message"),
    [("ValueError", "bad"), ("KeyError", "'x'"), ("myapp.Error", "boom"), ("", ""),
     ("sqlalchemy.exc.ArgumentError", "not a database error")],
)  # fmt: skip
def test_classify_exception_event_unknown(exception_type: str, message: str) -> None:
    assert classify_exception_event(exception_type, message) is None


def test_classify_exception_event_never_raises() -> None:
    assert classify_exception_event(None, None) is None  # type: ignore[arg-type]


def test_classify_non_database_exception() -> None:
    assert classify_exception(ValueError("x")) == ErrorFacts(None, "other", False, "ValueError")
    facts = classify_exception(ConnectionRefusedError("refused"))
    assert facts.category == "connection"


def test_classify_exception_never_raises() -> None:
    class Hostile(Exception):
        @property
        def pgcode(self):
            raise RuntimeError("no")

        def __str__(self):
            raise RuntimeError("no")

    facts = classify_exception(Hostile())
    assert facts.category == "other"
    assert facts.error_type.endswith("Hostile")


def test_classify_sqlite_without_a_server() -> None:
    # sqlite3 is in-process: this is a real database, not a mock.
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (a INTEGER UNIQUE)")
    connection.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as caught:
        connection.execute("INSERT INTO t VALUES (1)")
    assert classify_exception(caught.value) == ErrorFacts(
        "SQLITE_CONSTRAINT_UNIQUE", "constraint_violation", False, "sqlite3.IntegrityError"
    )


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            'duplicate key value violates unique constraint "users_email_key"\n'
            "DETAIL:  Key (email)=(alice@example.com) already exists.\n",
            'duplicate key value violates unique constraint "users_email_key"\n'
            "DETAIL:  Key (email)=(?) already exists.",
        ),
        (
            'insert or update on table "c" violates foreign key constraint "c_p_fkey"\n'
            'DETAIL:  Key (p_id)=(999) is not present in table "p".',
            'insert or update on table "c" violates foreign key constraint "c_p_fkey"\n'
            'DETAIL:  Key (p_id)=(?) is not present in table "p".',
        ),
        (
            'invalid input syntax for type integer: "hunter2"',
            "invalid input syntax for type integer: ?",
        ),
        (
            'invalid input syntax for type integer: "hunter2"\n'
            "LINE 1: SELECT * FROM t WHERE id = 'hunter2'\n"
            "                                   ^\n",
            "invalid input syntax for type integer: ?\nLINE 1: SELECT * FROM t WHERE id = ?",
        ),
        ("no such column: hunter2", "no such column: ?"),
        ("Duplicate entry 'x' for key 'users.email'", "Duplicate entry ? for key 'users.email'"),
        (
            "(1062, \"Duplicate entry 'x' for key 'users.email'\")",
            "(1062, \"Duplicate entry ? for key 'users.email'\")",
        ),
        (
            'new row for relation "t" violates check constraint "t_c"\n'
            "DETAIL:  Failing row contains (1, secret, 2).",
            'new row for relation "t" violates check constraint "t_c"\n'
            "DETAIL:  Failing row contains (?).",
        ),
        ('near "hunter2": syntax error', "near ?: syntax error"),
        (
            "(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint"
            ' "u_email_key"\nDETAIL:  Key (email)=(a@b.c) already exists.\n\n'
            "[SQL: INSERT INTO u (id, email) VALUES (%(id)s, %(email)s) -- 12345\n  AND 'x']\n"
            "[parameters: {'id': 12345, 'email': 'a@b.c'}]\n"
            "(Background on this error at: https://sqlalche.me/e/20/gkpj)",
            "(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint"
            ' "u_email_key"\nDETAIL:  Key (email)=(?) already exists.\n\n'
            "[SQL: INSERT INTO u (id, email) VALUES (%(id)s, %(email)s) AND ?]\n"
            "[parameters: ?]\n"
            "(Background on this error at: https://sqlalche.me/e/20/gkpj)",
        ),
        (
            "boom\n[SQL: SELECT 12345]\n[parameters: (12345, 67890",
            "boom\n[SQL: SELECT ?]\n[parameters: ?]",
        ),
        ("WRONGTYPE Operation against a key", "WRONGTYPE Operation against a key"),
        ("", ""),
    ],
)
def test_scrub_error_message(message: str, expected: str) -> None:
    assert scrub_error_message(message) == expected


def test_scrub_is_bounded_and_cuts_at_a_line() -> None:
    long_message = "line one\n" + ("value 'x' " * 5000)
    scrubbed = scrub_error_message(long_message)
    assert len(scrubbed) <= MAX_MESSAGE_CHARS
    assert "'x'" not in scrubbed
    assert scrub_error_message("'" + "s" * 10_000) in ("", "?")


def test_scrub_never_raises() -> None:
    assert isinstance(scrub_error_message(None), str)  # type: ignore[arg-type]
