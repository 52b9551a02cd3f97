"""The canary scan: with default settings, no literal value a workload used appears in
anything exported (span names, attributes, status descriptions, event attributes).

Each workload runs distinctive values through the real drivers and the real session
pipeline, in statement text and as bound parameters, in successful and failing
statements, raw and through SQLAlchemy, on PostgreSQL, MariaDB, SQLite and Redis.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import psycopg2
import pytest
import redis
import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import MARIADB_SQLALCHEMY_URL, POSTGRES_URL, REDIS_URL, exported_fields, leaks

CANARIES = ("hunter2", "alice.canary@example.com", "918273", "s3cr3t-t0ken")
PASSWORD, EMAIL, NUMBER, TOKEN = CANARIES
tracer = trace.get_tracer(__name__)


def _assert_no_canary(spans, minimum_db_spans: int) -> None:
    finished = spans.finished()
    assert len(spans.db_spans()) >= minimum_db_spans
    found = [
        (span.name, canary, field)
        for span in finished
        for field in exported_fields(span)
        for canary in CANARIES
        if leaks(canary, field)
    ]
    assert found == []


@pytest.mark.postgres
def test_postgresql_raw_and_sqlalchemy(spans):
    table = f"otel_db_canary_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"CREATE TABLE {table} (id int PRIMARY KEY, email text UNIQUE, pw text)")
        )
    try:
        with (
            pytest.raises(sa.exc.IntegrityError),
            tracer.start_as_current_span("request"),
            engine.begin() as conn,
        ):
            insert = sa.text(f"INSERT INTO {table} VALUES (:id, :email, :password)")
            conn.execute(insert, {"id": int(NUMBER), "email": EMAIL, "password": PASSWORD})
            conn.execute(
                sa.text(f"SELECT * FROM {table} WHERE pw = '{PASSWORD}' AND id = {NUMBER}")
            )
            conn.execute(
                sa.text(f"UPDATE {table} SET pw = '{TOKEN}' WHERE email = :e"), {"e": EMAIL}
            )
            conn.execute(insert, {"id": 1, "email": EMAIL, "password": TOKEN})  # duplicate email
        raw = psycopg2.connect(POSTGRES_URL)
        cur = raw.cursor()
        cur.execute(f"SELECT '{EMAIL}', {NUMBER}, %s", (PASSWORD,))
        with pytest.raises(psycopg2.Error):
            cur.execute(f"SELECT '{PASSWORD}'::int")
        raw.rollback()
        with pytest.raises(psycopg2.Error):
            cur.execute(f"SELECT * FROM {table} WHERE id = 'x{NUMBER}'")
        raw.close()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()
    _assert_no_canary(spans, minimum_db_spans=7)


@pytest.mark.postgres
def test_asyncpg_through_sqlalchemy(spans):
    async def run() -> None:
        engine = create_async_engine(
            POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
        )
        async with engine.connect() as conn:
            await conn.execute(sa.text(f"SELECT '{EMAIL}', :p"), {"p": PASSWORD})
            with pytest.raises(sa.exc.DBAPIError):
                await conn.execute(sa.text(f"SELECT '{TOKEN}'::int + {NUMBER}"))
        await engine.dispose()

    asyncio.run(run())
    _assert_no_canary(spans, minimum_db_spans=2)


def test_sqlite3_raw_and_sqlalchemy(spans, tmp_path):
    conn = sqlite3.connect(tmp_path / "canary.db")
    conn.execute("CREATE TABLE users (email TEXT UNIQUE, pw TEXT, n INTEGER)")
    conn.execute(f"INSERT INTO users VALUES ('{EMAIL}', '{PASSWORD}', {NUMBER})")
    conn.execute("SELECT * FROM users WHERE pw = ?", (PASSWORD,))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(f"INSERT INTO users VALUES ('{EMAIL}', '{TOKEN}', 1)")
    with pytest.raises(sqlite3.OperationalError):
        # Double quotes: sqlite reads a value where no column has that name.
        conn.execute(f'SELECT * FROM users WHERE pw = "{PASSWORD}" AND nosuchcolumn = 1')
    conn.commit()
    conn.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'canary.db'}")
    with engine.connect() as sa_conn:
        sa_conn.execute(
            sa.text(f"SELECT * FROM users WHERE n = {NUMBER} AND pw = :p"), {"p": TOKEN}
        )
    engine.dispose()
    _assert_no_canary(spans, minimum_db_spans=5)


@pytest.mark.mariadb
def test_mariadb_through_sqlalchemy(spans):
    engine = sa.create_engine(MARIADB_SQLALCHEMY_URL)
    table = f"otel_db_canary_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (email VARCHAR(100) UNIQUE, n INT)"))
    try:
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} VALUES ('{EMAIL}', {NUMBER})"))
            conn.execute(sa.text(f"SELECT * FROM {table} WHERE email = :e"), {"e": PASSWORD})
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (:e, 1)"), {"e": EMAIL})
        with pytest.raises(sa.exc.DataError), engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} VALUES ('x', '{TOKEN}')"))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()
    _assert_no_canary(spans, minimum_db_spans=4)


@pytest.mark.redis
def test_redis_commands_and_errors(spans):
    client = redis.Redis.from_url(REDIS_URL)
    key = f"otel_db:canary:{PASSWORD}"
    client.set(key, EMAIL)
    client.get(key)
    client.hset(f"{key}:h", mapping={"token": TOKEN, "n": NUMBER})
    with pytest.raises(redis.ResponseError):
        client.lpush(key, NUMBER)
    with client.pipeline() as pipe:
        pipe.get(key).delete(key, f"{key}:h")
        pipe.execute()
    client.close()
    _assert_no_canary(spans, minimum_db_spans=5)
