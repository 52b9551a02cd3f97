"""Error classification proven against the real servers (no mocked databases).

Every test provokes a real error, then checks the ErrorFacts of the exception,
that the exception-event path (type name + message only) agrees, and that the
scrubbed message keeps none of the literal values the statement used.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator

import asyncpg
import psycopg2
import pymysql
import pytest
import redis
import sqlalchemy
from psycopg2 import errors as pg_errors
from sqlalchemy.ext.asyncio import create_async_engine

from otel_db.sql.errors import (
    ErrorFacts,
    classify_exception,
    classify_exception_event,
    qualified_name,
    scrub_error_message,
)
from tests.conftest import MARIADB

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
# Every statement is bounded so that a broken test fails in seconds, never hangs.
PG_OPTIONS = (
    "-c statement_timeout=15000 -c lock_timeout=10000 -c idle_in_transaction_session_timeout=30000"
)


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def secret(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def assert_facts(exc: BaseException, expected: ErrorFacts, *literals: str) -> None:
    assert classify_exception(exc) == expected
    event = classify_exception_event(qualified_name(type(exc)), str(exc))
    assert event is not None
    assert event.category == expected.category
    assert event.status_code in (expected.status_code, None)
    scrubbed = scrub_error_message(str(exc))
    for literal in literals:
        assert literal not in scrubbed, scrubbed


# --- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def pg_connect() -> Iterator[Callable[..., object]]:
    connections = []

    def connect(autocommit: bool = True):
        connection = psycopg2.connect(connect_timeout=5, options=PG_OPTIONS, **PG)
        connection.autocommit = autocommit
        connections.append(connection)
        return connection

    yield connect
    for connection in connections:
        with contextlib.suppress(Exception):
            connection.close()


@pytest.fixture
def pg_table(pg_connect) -> Iterator[str]:
    """A fresh two-row table ``(id int primary key, email text unique, v int)``."""
    name = unique_name("otel_db_err")
    admin = pg_connect()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, email text UNIQUE, v int)")
        cursor.execute(f"INSERT INTO {name} VALUES (1, 'one@example.com', 0), (2, NULL, 0)")
    yield name
    with pg_connect().cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {name} CASCADE")


def run_pg(connection, statement: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.postgres
def test_pg_unique_violation(pg_connect, pg_table) -> None:
    email = secret("alice") + "@example.com"
    connection = pg_connect()
    run_pg(connection, f"INSERT INTO {pg_table} VALUES (10, %s, 0)", (email,))
    with pytest.raises(pg_errors.UniqueViolation) as caught:
        run_pg(connection, f"INSERT INTO {pg_table} VALUES (11, %s, 0)", (email,))
    assert email in str(caught.value)  # the server really echoed it...
    assert_facts(  # ...and scrubbing removes it
        caught.value,
        ErrorFacts("23505", "constraint_violation", False, "psycopg2.errors.UniqueViolation"),
        email,
    )
    assert "Key (email)=(?) already exists" in scrub_error_message(str(caught.value))


@pytest.mark.postgres
def test_pg_foreign_key_violation(pg_connect, pg_table) -> None:
    child = unique_name("otel_db_child")
    connection = pg_connect()
    run_pg(connection, f"CREATE TABLE {child} (id int, parent_id int REFERENCES {pg_table}(id))")
    try:
        with pytest.raises(pg_errors.ForeignKeyViolation) as caught:
            run_pg(connection, f"INSERT INTO {child} VALUES (1, 987654321)")
        assert_facts(
            caught.value,
            ErrorFacts(
                "23503", "constraint_violation", False, "psycopg2.errors.ForeignKeyViolation"
            ),
            "987654321",
        )
    finally:
        run_pg(connection, f"DROP TABLE IF EXISTS {child}")


@pytest.mark.postgres
def test_pg_deadlock(pg_connect, pg_table) -> None:
    first, second = pg_connect(autocommit=False), pg_connect(autocommit=False)
    for connection in (first, second):
        run_pg(connection, "SET deadlock_timeout = '100ms'")
    run_pg(first, f"UPDATE {pg_table} SET v = 1 WHERE id = 1")
    run_pg(second, f"UPDATE {pg_table} SET v = 2 WHERE id = 2")

    failures: list[BaseException] = []

    def cross(connection, row: int) -> None:
        try:
            run_pg(connection, f"UPDATE {pg_table} SET v = 3 WHERE id = {row}")
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.rollback()

    worker = threading.Thread(target=cross, args=(first, 2), daemon=True)
    worker.start()
    cross(second, 1)
    worker.join(timeout=20)
    assert not worker.is_alive()

    deadlocks = [exc for exc in failures if isinstance(exc, pg_errors.DeadlockDetected)]
    assert len(deadlocks) == 1, failures
    assert_facts(
        deadlocks[0],
        ErrorFacts("40P01", "deadlock", True, "psycopg2.errors.DeadlockDetected"),
    )


@pytest.mark.postgres
def test_pg_serialization_failure(pg_connect, pg_table) -> None:
    reader = pg_connect(autocommit=False)
    reader.set_session(isolation_level="SERIALIZABLE")
    writer = pg_connect()
    run_pg(reader, f"SELECT v FROM {pg_table} WHERE id = 1")  # takes the snapshot
    run_pg(writer, f"UPDATE {pg_table} SET v = 41 WHERE id = 1")
    with pytest.raises(pg_errors.SerializationFailure) as caught:
        run_pg(reader, f"UPDATE {pg_table} SET v = 42 WHERE id = 1")
    reader.rollback()
    assert_facts(
        caught.value,
        ErrorFacts("40001", "serialization_failure", True, "psycopg2.errors.SerializationFailure"),
    )


@pytest.mark.postgres
def test_pg_lock_timeout(pg_connect, pg_table) -> None:
    holder = pg_connect(autocommit=False)
    waiter = pg_connect()
    run_pg(holder, f"UPDATE {pg_table} SET v = 1 WHERE id = 1")
    run_pg(waiter, "SET lock_timeout = '200ms'")
    try:
        with pytest.raises(pg_errors.LockNotAvailable) as caught:
            run_pg(waiter, f"UPDATE {pg_table} SET v = 2 WHERE id = 1")
    finally:
        holder.rollback()
    assert_facts(
        caught.value,
        ErrorFacts("55P03", "lock_timeout", False, "psycopg2.errors.LockNotAvailable"),
    )


@pytest.mark.postgres
def test_pg_statement_timeout(pg_connect) -> None:
    connection = pg_connect()
    run_pg(connection, "SET statement_timeout = '100ms'")
    with pytest.raises(pg_errors.QueryCanceled) as caught:
        run_pg(connection, "SELECT pg_sleep(5)")
    assert_facts(
        caught.value,
        ErrorFacts("57014", "query_canceled", False, "psycopg2.errors.QueryCanceled"),
    )


@pytest.mark.postgres
def test_pg_syntax_error_echo_is_sanitized(pg_connect) -> None:
    password = secret("hunter2")
    with pytest.raises(pg_errors.SyntaxError) as caught:
        run_pg(pg_connect(), f"SELECT '{password}' FRM nowhere")
    assert password in str(caught.value)  # echoed after "LINE 1:"
    assert_facts(
        caught.value,
        ErrorFacts("42601", "syntax", False, "psycopg2.errors.SyntaxError"),
        password,
    )
    assert "LINE 1: SELECT ? FRM nowhere" in scrub_error_message(str(caught.value))


@pytest.mark.postgres
def test_pg_invalid_input_value_is_scrubbed(pg_connect, pg_table) -> None:
    password = secret("hunter2")
    with pytest.raises(pg_errors.InvalidTextRepresentation) as caught:
        run_pg(pg_connect(), f"SELECT * FROM {pg_table} WHERE id = %s", (password,))
    assert_facts(
        caught.value,
        ErrorFacts("22P02", "other", False, "psycopg2.errors.InvalidTextRepresentation"),
        password,
    )


@pytest.mark.postgres
def test_pg_undefined_table(pg_connect) -> None:
    with pytest.raises(pg_errors.UndefinedTable) as caught:
        run_pg(pg_connect(), f"SELECT * FROM {unique_name('missing')}")
    assert_facts(
        caught.value, ErrorFacts("42P01", "syntax", False, "psycopg2.errors.UndefinedTable")
    )


@pytest.mark.postgres
def test_pg_terminated_connection(pg_connect) -> None:
    victim, admin = pg_connect(), pg_connect()
    with victim.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert cursor.fetchone() == (True,)

    with pytest.raises(psycopg2.Error) as caught:
        run_pg(victim, "SELECT 1")
    facts = classify_exception(caught.value)
    assert facts.category == "connection", (type(caught.value), str(caught.value))
    assert facts.status_code in ("57P01", None)
    assert facts.retryable is False
    event = classify_exception_event(qualified_name(type(caught.value)), str(caught.value))
    assert event is not None and event.category == "connection"

    # Using the dead connection again: "connection already closed".
    with pytest.raises(psycopg2.InterfaceError) as again:
        run_pg(victim, "SELECT 1")
    assert classify_exception(again.value) == ErrorFacts(
        None, "connection", False, "psycopg2.InterfaceError"
    )


@pytest.mark.postgres
def test_pg_connection_refused_without_server_code() -> None:
    with pytest.raises(psycopg2.OperationalError) as caught:
        psycopg2.connect(
            host="127.0.0.1", port=1, user="postgres", dbname="test", connect_timeout=2
        )
    assert classify_exception(caught.value) == ErrorFacts(
        None, "connection", False, "psycopg2.OperationalError"
    )


@pytest.mark.postgres
def test_sqlalchemy_wrapped_psycopg2_error_is_unwrapped(pg_table) -> None:
    engine = sqlalchemy.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    email = secret("bob") + "@example.com"
    try:
        with engine.begin() as connection:
            insert = sqlalchemy.text(f"INSERT INTO {pg_table} VALUES (:id, :email, 0)")
            connection.execute(insert, {"id": 20, "email": email})
        with pytest.raises(sqlalchemy.exc.IntegrityError) as caught, engine.begin() as connection:
            connection.execute(insert, {"id": 21, "email": email})
    finally:
        engine.dispose()
    assert classify_exception(caught.value) == ErrorFacts(
        "23505", "constraint_violation", False, "psycopg2.errors.UniqueViolation"
    )
    event = classify_exception_event(qualified_name(type(caught.value)), str(caught.value))
    assert event is not None and event.status_code == "23505"
    scrubbed = scrub_error_message(str(caught.value))
    assert email not in scrubbed
    assert "[parameters: ?]" in scrubbed


@pytest.mark.postgres
def test_asyncpg_and_sqlalchemy_asyncpg_adapter(pg_table) -> None:
    email = "one@example.com"  # already in the table

    async def scenario() -> tuple[BaseException, BaseException]:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=5432, user="postgres", database="test", timeout=5
        )
        try:
            try:
                await connection.execute(f"INSERT INTO {pg_table} VALUES (30, $1, 0)", email)
            except asyncpg.UniqueViolationError as exc:
                direct = exc
        finally:
            await connection.close()

        engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    sqlalchemy.text(f"INSERT INTO {pg_table} VALUES (31, :email, 0)"),
                    {"email": email},
                )
        except sqlalchemy.exc.IntegrityError as exc:
            wrapped = exc
        finally:
            await engine.dispose()
        return direct, wrapped

    direct, wrapped = asyncio.run(asyncio.wait_for(scenario(), timeout=20))
    assert classify_exception(direct) == ErrorFacts(
        "23505", "constraint_violation", False, "asyncpg.exceptions.UniqueViolationError"
    )
    facts = classify_exception(wrapped)
    assert (facts.status_code, facts.category) == ("23505", "constraint_violation")
    assert facts.error_type == "asyncpg.exceptions.UniqueViolationError"


# --- MariaDB ------------------------------------------------------------------------


@pytest.fixture
def mariadb_connect() -> Iterator[Callable[..., object]]:
    connections = []

    def connect(autocommit: bool = True):
        connection = pymysql.connect(
            connect_timeout=5, read_timeout=20, write_timeout=20, autocommit=autocommit, **MARIADB
        )
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 10")
        connections.append(connection)
        return connection

    yield connect
    for connection in connections:
        with contextlib.suppress(Exception):
            connection.close()


@pytest.fixture
def mariadb_table(mariadb_connect) -> Iterator[str]:
    name = unique_name("otel_db_err")
    with mariadb_connect().cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {name} (id INT PRIMARY KEY, email VARCHAR(200) UNIQUE, v INT)"
            " ENGINE=InnoDB"
        )
        cursor.execute(f"INSERT INTO {name} VALUES (1, NULL, 0), (2, NULL, 0)")
    yield name
    with mariadb_connect().cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.mark.mariadb
def test_mariadb_duplicate_entry(mariadb_connect, mariadb_table) -> None:
    email = secret("carol") + "@example.com"
    connection = mariadb_connect()
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {mariadb_table} VALUES (10, %s, 0)", (email,))
        with pytest.raises(pymysql.err.IntegrityError) as caught:
            cursor.execute(f"INSERT INTO {mariadb_table} VALUES (11, %s, 0)", (email,))
    assert email in str(caught.value)
    assert_facts(
        caught.value,
        ErrorFacts("1062", "constraint_violation", False, "pymysql.err.IntegrityError"),
        email,
    )
    assert "Duplicate entry ? for key" in scrub_error_message(str(caught.value))


@pytest.mark.mariadb
def test_mariadb_deadlock(mariadb_connect, mariadb_table) -> None:
    first, second = mariadb_connect(autocommit=False), mariadb_connect(autocommit=False)
    for connection, row in ((first, 1), (second, 2)):
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {mariadb_table} SET v = 1 WHERE id = {row}")

    failures: list[BaseException] = []
    first_waiting = threading.Event()

    def cross(connection, row: int, started: threading.Event | None) -> None:
        try:
            with connection.cursor() as cursor:
                if started is not None:
                    started.set()
                cursor.execute(f"UPDATE {mariadb_table} SET v = 3 WHERE id = {row}")
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.rollback()

    worker = threading.Thread(target=cross, args=(first, 2, first_waiting), daemon=True)
    worker.start()
    first_waiting.wait(timeout=5)
    threading.Event().wait(0.3)  # let the first UPDATE reach its lock wait
    cross(second, 1, None)
    worker.join(timeout=20)
    assert not worker.is_alive()

    deadlocks = [
        exc
        for exc in failures
        if isinstance(exc, pymysql.err.OperationalError) and exc.args[0] == 1213
    ]
    assert len(deadlocks) == 1, failures
    assert_facts(deadlocks[0], ErrorFacts("1213", "deadlock", True, "pymysql.err.OperationalError"))


@pytest.mark.mariadb
def test_mariadb_syntax_error(mariadb_connect) -> None:
    password = secret("hunter2")
    with (
        pytest.raises(pymysql.err.ProgrammingError) as caught,
        mariadb_connect().cursor() as cursor,
    ):
        cursor.execute(f"SELECT '{password}' FRM nowhere")
    assert_facts(
        caught.value, ErrorFacts("1064", "syntax", False, "pymysql.err.ProgrammingError"), password
    )


# --- SQLite -------------------------------------------------------------------------


def test_sqlite_unique_constraint(tmp_path) -> None:
    value = secret("dave")
    connection = sqlite3.connect(tmp_path / "errors.db")
    try:
        connection.execute("CREATE TABLE t (email TEXT UNIQUE)")
        connection.execute("INSERT INTO t VALUES (?)", (value,))
        with pytest.raises(sqlite3.IntegrityError) as caught:
            connection.execute("INSERT INTO t VALUES (?)", (value,))
    finally:
        connection.close()
    assert_facts(
        caught.value,
        ErrorFacts(
            "SQLITE_CONSTRAINT_UNIQUE", "constraint_violation", False, "sqlite3.IntegrityError"
        ),
        value,
    )


@pytest.mark.parametrize(
    ("statement", "literal"),
    [
        ("SELECT 'hunter2-sqlite' FRM t", "hunter2-sqlite"),
        ("SELECT * FROM t WHERE email = unknown_col_dq", "unknown_col_dq"),  # "no such column"
        ("SELECT * FROM missing_table WHERE a = 'hunter2-m'", "hunter2-m"),
    ],
)
def test_sqlite_syntax_errors(statement: str, literal: str) -> None:
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE t (email TEXT)")
        with pytest.raises(sqlite3.OperationalError) as caught:
            connection.execute(statement)
    finally:
        connection.close()
    assert_facts(
        caught.value,
        ErrorFacts("SQLITE_ERROR", "syntax", False, "sqlite3.OperationalError"),
        literal,
    )


# --- Redis --------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_wrongtype() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5, socket_connect_timeout=5)
    key = unique_name("otel_db:err")
    value = secret("redis")
    try:
        client.set(key, value)
        with pytest.raises(redis.exceptions.ResponseError) as caught:
            client.lpush(key, value)
    finally:
        client.delete(key)
        client.close()
    assert_facts(
        caught.value,
        ErrorFacts("WRONGTYPE", "other", False, "redis.exceptions.ResponseError"),
        value,
    )


@pytest.mark.redis
def test_redis_watch_error_and_connection_error() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5, socket_connect_timeout=5)
    key = unique_name("otel_db:watch")
    try:
        with client.pipeline() as pipe:
            pipe.watch(key)
            client.set(key, "changed elsewhere")
            pipe.multi()
            pipe.set(key, "mine")
            with pytest.raises(redis.exceptions.WatchError) as caught:
                pipe.execute()
    finally:
        client.delete(key)
        client.close()
    assert classify_exception(caught.value) == ErrorFacts(
        None, "serialization_failure", True, "redis.exceptions.WatchError"
    )

    refused = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=2)
    with pytest.raises(redis.exceptions.ConnectionError) as down:
        refused.ping()
    assert classify_exception(down.value).category == "connection"
