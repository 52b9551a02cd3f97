"""pg8000 and mysql-connector-python, traced like the other SQL drivers, against the real
PostgreSQL and MariaDB: sanitized text, summary, fingerprint, server and database,
returned rows, batch size, transactions and their outcome, N+1, slow statements, error
classification with the driver's own codes, connect spans, and SQLAlchemy on top."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import mysql.connector
import pg8000
import pg8000.dbapi
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from otel_db import attributes as attr
from tests.conftest import MARIADB, free_port

tracer = trace.get_tracer(__name__)
PG = {"user": "postgres", "host": "127.0.0.1", "port": 5432, "database": "test"}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def by_summary(spans, summary):
    return [s for s in spans.db_spans() if s.attributes.get(attr.DB_QUERY_SUMMARY) == summary]


def transactions(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


# --- pg8000 -------------------------------------------------------------------------------


@pytest.fixture(params=["pg8000.connect", "pg8000.dbapi.connect"])
def pg(request) -> Iterator[object]:
    connect = pg8000.connect if request.param == "pg8000.connect" else pg8000.dbapi.connect
    connection = connect(**PG)
    yield connection
    connection.close()


@pytest.mark.postgres
def test_pg8000_statement_spans(spans, pg):
    table = unique("otel_db_pg8000")
    cursor = pg.cursor()
    cursor.execute(f"CREATE TEMP TABLE {table} (id int primary key, email text)")
    cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])
    cursor.execute(f"SELECT email FROM {table} WHERE id > 1 AND email <> 'zz'")
    assert len(cursor.fetchall()) == 2
    pg.commit()
    (select,) = by_summary(spans, f"SELECT {table}")
    assert select.kind is SpanKind.CLIENT
    assert select.name == f"SELECT {table}"
    a = select.attributes
    assert a[attr.DB_SYSTEM_NAME] == "postgresql"
    assert a[attr.DB_NAMESPACE] == "test"
    assert a[attr.SERVER_ADDRESS] == "127.0.0.1"
    assert a[attr.SERVER_PORT] == 5432
    assert a[attr.DB_QUERY_TEXT] == f"SELECT email FROM {table} WHERE id > ? AND email <> ?"
    assert len(a[attr.QUERY_FINGERPRINT]) == 16
    assert a[attr.DB_RESPONSE_RETURNED_ROWS] == 2
    (insert,) = by_summary(spans, f"INSERT {table}")
    assert insert.attributes[attr.DB_OPERATION_BATCH_SIZE] == 3
    # autocommit off: one transaction from the first statement to commit()
    (transaction,) = transactions(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert transaction.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 3
    assert select.parent.span_id == transaction.context.span_id
    assert select.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED


@pytest.mark.postgres
def test_pg8000_duplicate_key_is_a_constraint_violation(spans, pg):
    table = unique("otel_db_pg8000")
    cursor = pg.cursor()
    cursor.execute(f"CREATE TEMP TABLE {table} (email text primary key)")
    cursor.execute(f"INSERT INTO {table} VALUES ('alice.canary@example.com')")
    with pytest.raises(pg8000.dbapi.DatabaseError):
        cursor.execute(f"INSERT INTO {table} VALUES ('alice.canary@example.com')")
    pg.rollback()
    failed = [s for s in spans.db_spans() if s.status.status_code is StatusCode.ERROR]
    (span,) = [s for s in failed if s.attributes.get(attr.DB_QUERY_SUMMARY) == f"INSERT {table}"]
    assert span.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "23505"
    assert span.attributes[attr.ERROR_RETRYABLE] is False
    # (the legacy interface raises its IntegrityError, pg8000.dbapi the base DatabaseError)
    assert span.attributes[attr.ERROR_TYPE] in (
        "pg8000.dbapi.IntegrityError",
        "pg8000.exceptions.DatabaseError",
    )
    (transaction,) = transactions(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    # (the session's canary scan proves the duplicate value was scrubbed from the event)


@pytest.mark.postgres
def test_pg8000_n_plus_one_and_slow(spans):
    connection = pg8000.dbapi.connect(**PG)
    connection.autocommit = True
    try:
        cursor = connection.cursor()
        with tracer.start_as_current_span("request"):
            for n in range(5):
                cursor.execute(f"SELECT oid FROM pg_class WHERE oid = {n + 1}")
            cursor.execute("SELECT pg_sleep(0.25)")
    finally:
        connection.close()
    (request,) = [s for s in spans.finished() if s.name == "request"]
    assert request.attributes[attr.N_PLUS_ONE_DETECTED] is True
    assert request.attributes[attr.N_PLUS_ONE_COUNT] == 5
    assert request.attributes[attr.QUERY_COUNT] == 6
    (slow,) = [s for s in spans.db_spans() if s.attributes.get(attr.QUERY_SLOW)]
    assert "pg_sleep" in slow.attributes[attr.DB_QUERY_TEXT]
    assert transactions(spans) == []  # autocommit: no transaction


@pytest.mark.postgres
def test_pg8000_refused_connect_span(spans):
    port = free_port()
    with pytest.raises(pg8000.dbapi.InterfaceError):
        pg8000.dbapi.connect(user="postgres", host="127.0.0.1", port=port, database="shop")
    (span,) = [s for s in spans.finished() if s.name == "connect"]
    assert span.attributes[attr.SERVER_PORT] == port
    assert span.attributes[attr.DB_NAMESPACE] == "shop"
    assert span.attributes[attr.ERROR_CATEGORY] == "connection"


@pytest.mark.postgres
def test_pg8000_unknown_role_connect_span(spans):
    with pytest.raises(pg8000.dbapi.DatabaseError):
        pg8000.dbapi.connect(user=unique("otel_db_no_role"), host="127.0.0.1", database="test")
    (span,) = [s for s in spans.finished() if s.name == "connect"]
    assert span.attributes[attr.ERROR_CATEGORY] == "authentication"
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "28000"


@pytest.mark.postgres
def test_sqlalchemy_over_pg8000_one_span_and_no_warning(spans):
    engine = sa.create_engine("postgresql+pg8000://postgres@127.0.0.1:5432/test")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # pg8000 warns on DB-API extension use
            with engine.connect() as connection:
                rows = connection.execute(sa.text("SELECT generate_series(1, 4) AS otel_n"))
                assert len(rows.all()) == 4
    finally:
        engine.dispose()
    (span,) = [s for s in spans.db_spans() if "otel_n" in s.attributes.get(attr.DB_QUERY_TEXT, "")]
    assert span.attributes[attr.DB_RESPONSE_RETURNED_ROWS] == 4
    assert span.instrumentation_scope.name.startswith("otel_db")


# --- mysql-connector ----------------------------------------------------------------------


@pytest.fixture
def my() -> Iterator[object]:
    with warnings.catch_warnings():
        # mysql-connector's own traceparent propagation would warn on every statement
        # against MariaDB, only because contrib's span is current: never on our account.
        warnings.simplefilter("error")
        connection = mysql.connector.connect(**MARIADB)
        yield connection
        connection.close()


@pytest.mark.mariadb
def test_mysql_connector_statement_spans(spans, my):
    table = unique("otel_db_myc")
    cursor = my.cursor(buffered=True)
    cursor.execute(f"CREATE TEMPORARY TABLE {table} (id int primary key, email varchar(80))")
    cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(1, "a"), (2, "b")])
    cursor.execute(f"SELECT email FROM {table} WHERE id >= 1 AND email <> 'zz'")
    assert len(cursor.fetchall()) == 2
    my.commit()
    (select,) = by_summary(spans, f"SELECT {table}")
    a = select.attributes
    assert a[attr.DB_SYSTEM_NAME] in ("mysql", "mariadb")  # mariadb under the distro
    assert a[attr.DB_NAMESPACE] == MARIADB["database"]
    assert a[attr.SERVER_PORT] == MARIADB["port"]
    assert a[attr.DB_QUERY_TEXT] == f"SELECT email FROM {table} WHERE id >= ? AND email <> ?"
    assert len(a[attr.QUERY_FINGERPRINT]) == 16
    assert a[attr.DB_RESPONSE_RETURNED_ROWS] == 2
    (insert,) = by_summary(spans, f"INSERT {table}")
    assert insert.attributes[attr.DB_OPERATION_BATCH_SIZE] == 2
    (transaction,) = transactions(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert select.parent.span_id == transaction.context.span_id


@pytest.mark.mariadb
def test_mysql_connector_duplicate_key_is_a_constraint_violation(spans, my):
    table = unique("otel_db_myc")
    cursor = my.cursor()
    cursor.execute(f"CREATE TEMPORARY TABLE {table} (email varchar(80) primary key)")
    cursor.execute(f"INSERT INTO {table} VALUES ('alice.canary@example.com')")
    with pytest.raises(mysql.connector.IntegrityError):
        cursor.execute(f"INSERT INTO {table} VALUES ('alice.canary@example.com')")
    my.rollback()
    failed = [s for s in spans.db_spans() if s.status.status_code is StatusCode.ERROR]
    (span,) = failed
    assert span.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "1062"
    assert span.attributes[attr.ERROR_RETRYABLE] is False
    (transaction,) = transactions(spans)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK


@pytest.mark.mariadb
def test_mysql_connector_n_plus_one(spans, my):
    my.autocommit = True
    cursor = my.cursor(buffered=True)
    with tracer.start_as_current_span("request"):
        for n in range(5):
            cursor.execute(f"SELECT {n} AS otel_db_myc_n")
    (request,) = [s for s in spans.finished() if s.name == "request"]
    assert request.attributes[attr.N_PLUS_ONE_DETECTED] is True
    assert request.attributes[attr.QUERY_COUNT] == 5


@pytest.mark.mariadb
def test_mysql_connector_bad_password_connect_span(spans):
    with pytest.raises(mysql.connector.Error):
        mysql.connector.connect(**{**MARIADB, "user": "root", "password": "wrong-password"})
    (span,) = [s for s in spans.finished() if s.name == "connect"]
    assert span.attributes[attr.ERROR_CATEGORY] == "authentication"
    assert span.attributes[attr.DB_RESPONSE_STATUS_CODE] == "1045"


# --- under the launcher (entry points, as a user runs it) ---------------------------------


@pytest.mark.postgres
@pytest.mark.mariadb
def test_launcher_traces_pg8000_and_mysql_connector(tmp_path):
    from tests.integration.launcher import run_inline
    from tests.support.console_output import console_spans

    result = run_inline(
        tmp_path,
        f"""
        import warnings
        warnings.simplefilter("error")  # neither driver may warn on otel_db's account
        # (mysql-connector deprecates get_server_info(), which the distro's MariaDB
        # naming reads; DeprecationWarnings are hidden by default anyway)
        warnings.simplefilter("ignore", DeprecationWarning)
        import mysql.connector, pg8000.dbapi
        pg = pg8000.dbapi.connect(**{PG!r})
        cur = pg.cursor()
        cur.execute("SELECT 41 + 1 AS otel_db_launcher_pg")
        print("PG", cur.fetchone()[0])
        pg.commit()
        pg.close()
        my = mysql.connector.connect(**{MARIADB!r})
        cur = my.cursor()
        cur.execute("SELECT 40 + 2 AS otel_db_launcher_my")
        print("MY", cur.fetchone()[0])
        my.close()
        """,
        env={"OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    assert "PG 42" in result.stdout and "MY 42" in result.stdout
    texts = {s["attributes"].get(attr.DB_QUERY_TEXT, ""): s for s in console_spans(result.stdout)}
    pg_span = texts["SELECT ? + ? AS otel_db_launcher_pg"]
    my_span = texts["SELECT ? + ? AS otel_db_launcher_my"]
    assert pg_span["attributes"][attr.DB_SYSTEM_NAME] == "postgresql"
    assert my_span["attributes"][attr.DB_SYSTEM_NAME] == "mariadb"  # the distro's naming
    assert pg_span["attributes"][attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
