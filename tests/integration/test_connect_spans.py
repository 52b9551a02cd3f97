"""Failed connection attempts against the real servers: one CLIENT ``connect`` span per
attempt, classified ``connection`` or ``authentication``; successful connects make none.

Refused = a free, closed port on 127.0.0.1. Timed out = a listening socket that never
answers. Bad credentials: PostgreSQL here trusts 127.0.0.1, so a password is never
checked; an unknown role is its bad credential. MariaDB and Redis get a user with a
password created by the test, and a wrong password.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import uuid
from collections.abc import Iterator

import asyncpg
import psycopg2
import pymysql
import pytest
import redis
import redis.asyncio
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from otel_db import attributes as attr
from tests.conftest import MARIADB, POSTGRES_URL, REDIS_URL, free_port

tracer = trace.get_tracer(__name__)


def connect_spans(spans):
    return [s for s in spans.finished() if s.name == "connect"]


def only_connect_span(spans):
    (span,) = connect_spans(spans)
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.ERROR
    assert any(event.name == "exception" for event in span.events)
    return span


def assert_target(span, system, port, namespace, address="127.0.0.1"):
    attributes = span.attributes
    assert attributes[attr.DB_SYSTEM_NAME] == system
    assert attributes[attr.SERVER_ADDRESS] == address
    assert attributes[attr.SERVER_PORT] == port
    assert attributes[attr.DB_NAMESPACE] == namespace


def assert_failure(span, category, retryable, error_type, status_code=None):
    attributes = span.attributes
    assert attributes[attr.ERROR_CATEGORY] == category
    assert attributes[attr.ERROR_RETRYABLE] is retryable
    assert attributes[attr.ERROR_TYPE] == error_type
    assert attributes.get(attr.DB_RESPONSE_STATUS_CODE) == status_code


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --- PostgreSQL: psycopg2 ----------------------------------------------------------------


@pytest.mark.postgres
def test_psycopg2_refused(spans):
    port = free_port()
    with (
        tracer.start_as_current_span("request") as request,
        pytest.raises(psycopg2.OperationalError),
    ):
        psycopg2.connect(host="127.0.0.1", port=port, dbname="shop", user="postgres")
    span = only_connect_span(spans)
    assert span.parent.span_id == request.get_span_context().span_id
    assert_target(span, "postgresql", port, "shop")
    assert_failure(span, "connection", True, "psycopg2.OperationalError")


@pytest.mark.postgres
def test_psycopg2_unknown_role_is_authentication(spans):
    role = unique("otel_db_no_role")
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(f"postgresql://{role}:pw@127.0.0.1:5432/test")
    span = only_connect_span(spans)
    assert_target(span, "postgresql", 5432, "test")
    assert_failure(span, "authentication", False, "psycopg2.OperationalError", "28000")


@pytest.mark.postgres
def test_psycopg2_unknown_database(spans):
    database = unique("otel_db_no_db")
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database)
    span = only_connect_span(spans)
    assert_target(span, "postgresql", 5432, database)
    assert_failure(span, "connection", False, "psycopg2.OperationalError", "3D000")


@pytest.mark.postgres
def test_psycopg2_timed_out(spans, silent_port):
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(
            host="127.0.0.1", port=silent_port, user="postgres", dbname="test", connect_timeout=1
        )
    span = only_connect_span(spans)
    assert_failure(span, "connection", True, "psycopg2.OperationalError")
    assert span.end_time - span.start_time >= 900_000_000  # the 1 s it waited
    assert attr.QUERY_SLOW not in span.attributes  # a connect is no slow query


@pytest.mark.postgres
def test_successful_connect_makes_no_span(spans):
    psycopg2.connect(POSTGRES_URL).close()
    asyncio.run(_asyncpg_connect_and_close())
    pymysql.connect(**MARIADB).close()
    sqlite3.connect(":memory:").close()
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    client.close()
    assert connect_spans(spans) == []


async def _asyncpg_connect_and_close() -> None:
    connection = await asyncpg.connect(POSTGRES_URL)
    await connection.close()


# --- PostgreSQL: asyncpg and SQLAlchemy ---------------------------------------------------


@pytest.mark.postgres
def test_asyncpg_refused_and_bad_role(spans):
    port = free_port()
    role = unique("otel_db_no_role")

    async def attempts() -> None:
        with pytest.raises(OSError):
            await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="db1")
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(f"postgresql://{role}@127.0.0.1:5432/test")

    asyncio.run(attempts())
    refused, bad_role = connect_spans(spans)
    assert_target(refused, "postgresql", port, "db1")
    assert refused.attributes[attr.ERROR_CATEGORY] == "connection"
    assert refused.attributes[attr.ERROR_RETRYABLE] is True
    assert_target(bad_role, "postgresql", 5432, "test")
    assert_failure(
        bad_role,
        "authentication",
        False,
        "asyncpg.exceptions.InvalidAuthorizationSpecificationError",
        "28000",
    )


@pytest.mark.postgres
def test_asyncpg_pool_refused(spans):
    port = free_port()

    async def attempt() -> None:
        with pytest.raises(OSError):
            await asyncpg.create_pool(
                host="127.0.0.1", port=port, user="postgres", database="db2", min_size=1
            )

    asyncio.run(attempt())
    spans_seen = connect_spans(spans)
    assert spans_seen, "the pool's connection attempt made no connect span"
    for span in spans_seen:
        assert_target(span, "postgresql", port, "db2")


@pytest.mark.postgres
def test_sqlalchemy_engine_connect_one_span_per_attempt(spans):
    port = free_port()
    engine = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/shop")
    try:
        for _ in range(2):
            with pytest.raises(sa.exc.OperationalError), engine.connect():
                pass
    finally:
        engine.dispose()
    first, second = connect_spans(spans)
    for span in (first, second):
        assert_target(span, "postgresql", port, "shop")
        assert_failure(span, "connection", True, "psycopg2.OperationalError")


@pytest.mark.postgres
def test_sqlalchemy_unknown_database(spans):
    database = unique("otel_db_no_db")
    engine = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}")
    try:
        with pytest.raises(sa.exc.OperationalError), engine.connect():
            pass
    finally:
        engine.dispose()
    span = only_connect_span(spans)
    assert_target(span, "postgresql", 5432, database)
    assert_failure(span, "connection", False, "psycopg2.OperationalError", "3D000")


# --- MariaDB: pymysql ---------------------------------------------------------------------


@pytest.fixture
def mariadb_user() -> Iterator[tuple[str, str]]:
    user, password = unique("otel_db_u"), unique("pw")
    admin = pymysql.connect(**MARIADB)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        yield user, password
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


@pytest.mark.mariadb
def test_pymysql_refused(spans):
    port = free_port()
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=port, user="root", database="shop")
    span = only_connect_span(spans)
    assert_target(span, "mysql", port, "shop")
    assert_failure(span, "connection", True, "pymysql.err.OperationalError", "2003")


@pytest.mark.mariadb
def test_pymysql_bad_password(spans, mariadb_user):
    user, _ = mariadb_user
    params = {**MARIADB, "user": user, "password": "wrong-password"}
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**params)
    span = only_connect_span(spans)
    assert_target(span, "mysql", MARIADB["port"], MARIADB["database"], MARIADB["host"])
    assert_failure(span, "authentication", False, "pymysql.err.OperationalError", "1045")


@pytest.mark.mariadb
def test_pymysql_unknown_database(spans):
    database = unique("otel_db_no_db")
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**{**MARIADB, "database": database})
    span = only_connect_span(spans)
    assert span.attributes[attr.DB_NAMESPACE] == database
    assert_failure(span, "connection", False, "pymysql.err.OperationalError", "1049")


@pytest.mark.mariadb
def test_pymysql_timed_out(spans, silent_port):
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(
            host="127.0.0.1", port=silent_port, user="root", connect_timeout=1, read_timeout=1
        )
    span = only_connect_span(spans)
    assert span.attributes[attr.ERROR_CATEGORY] == "connection"
    assert span.attributes[attr.ERROR_RETRYABLE] is True


# --- SQLite -------------------------------------------------------------------------------


def test_sqlite3_unopenable_file(spans, tmp_path):
    path = str(tmp_path / "no_such_directory" / "app.db")
    with pytest.raises(sqlite3.OperationalError):
        sqlite3.connect(path)
    span = only_connect_span(spans)
    assert span.attributes[attr.DB_SYSTEM_NAME] == "sqlite"
    assert span.attributes[attr.DB_NAMESPACE] == path
    assert span.attributes[attr.ERROR_CATEGORY] == "connection"


# --- Redis --------------------------------------------------------------------------------


@pytest.fixture
def redis_user() -> Iterator[str]:
    user = unique("otel_db_u")
    admin = redis.Redis.from_url(REDIS_URL)
    admin.acl_setuser(user, enabled=True, passwords=[f"+{unique('pw')}"], commands=["+ping"])
    try:
        yield user
    finally:
        admin.acl_deluser(user)
        admin.close()


@pytest.mark.redis
def test_redis_refused_one_span_per_attempt(spans):
    port = free_port()
    client = redis.Redis(host="127.0.0.1", port=port, db=3, retry=None)
    with contextlib.closing(client), pytest.raises(redis.ConnectionError):
        client.get("otel_db:connect:key")
    span = only_connect_span(spans)
    assert_target(span, "redis", port, "3")
    assert_failure(span, "connection", True, "redis.exceptions.ConnectionError")


#: redis-py 7.2+ runs each connect attempt (socket and handshake) under the client's
#: Retry, one ``connect_check_health`` call per attempt. Before 7.2 the pool connects
#: outside the command's retry and ``connect()`` retries only the socket, inside itself,
#: and only on the errors it is told to (a refused connect is an OSError): measured on
#: 5.3.1, 6.0-6.4, 7.0 and 7.1.
REDIS_RETRIES_WHOLE_CONNECTS = tuple(int(p) for p in redis.__version__.split(".")[:2]) >= (7, 2)


@pytest.mark.redis
def test_redis_retries_are_attempts(spans):
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    port = free_port()
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        retry=Retry(NoBackoff(), 2),
        retry_on_error=[redis.ConnectionError],
    )
    with contextlib.closing(client), pytest.raises(redis.ConnectionError):
        client.get("otel_db:connect:key")
    attempts = connect_spans(spans)
    # The first try and two retries; before 7.2 redis-py makes this one attempt only.
    assert len(attempts) == (3 if REDIS_RETRIES_WHOLE_CONNECTS else 1)
    assert {s.attributes[attr.SERVER_PORT] for s in attempts} == {port}


@pytest.mark.redis
@pytest.mark.xfail(
    not REDIS_RETRIES_WHOLE_CONNECTS,
    strict=True,
    reason="redis-py < 7.2 retries a refused socket inside one connect() call, which "
    "otel_db wraps: one connect span for all attempts (docs/reliability.md)",
)
def test_redis_socket_retries_are_attempts(spans):
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    port = free_port()
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        retry=Retry(NoBackoff(), 2),
        retry_on_error=[ConnectionRefusedError],  # three socket connects on every version
    )
    with contextlib.closing(client), pytest.raises(redis.ConnectionError):
        client.get("otel_db:connect:key")
    assert len(connect_spans(spans)) == 3


@pytest.mark.redis
def test_redis_bad_password(spans, redis_user):
    client = redis.Redis(
        host="127.0.0.1", port=6379, username=redis_user, password="wrong", retry=None
    )
    with contextlib.closing(client), pytest.raises(redis.AuthenticationError):
        client.ping()
    span = only_connect_span(spans)
    assert_target(span, "redis", 6379, "0")
    assert_failure(span, "authentication", False, "redis.exceptions.AuthenticationError")


@pytest.mark.redis
def test_redis_asyncio_refused(spans):
    port = free_port()

    async def attempt() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=port, retry=None)
        try:
            with pytest.raises(redis.ConnectionError):
                await client.get("otel_db:connect:key")
        finally:
            await client.aclose()

    asyncio.run(attempt())
    span = only_connect_span(spans)
    assert_target(span, "redis", port, "0")
    assert span.attributes[attr.ERROR_CATEGORY] == "connection"


# --- under the launcher -------------------------------------------------------------------


@pytest.mark.postgres
def test_launcher_loads_connect_spans(tmp_path):
    from tests.integration.launcher import run_inline
    from tests.support.console_output import console_spans

    port = free_port()
    result = run_inline(
        tmp_path,
        f"""
        import psycopg2
        try:
            psycopg2.connect(host="127.0.0.1", port={port}, user="postgres", dbname="shop")
        except psycopg2.OperationalError:
            print("REFUSED")
        """,
        env={"OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    assert "REFUSED" in result.stdout
    (span,) = [s for s in console_spans(result.stdout) if s["name"] == "connect"]
    assert span["kind"] == "SpanKind.CLIENT"
    assert span["attributes"][attr.ERROR_CATEGORY] == "connection"
    assert span["attributes"][attr.SERVER_PORT] == port
