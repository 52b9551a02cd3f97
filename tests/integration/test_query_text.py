"""db.query.text, db.query.summary, db.collection.name, the fingerprint and span names
on real statements, and opt-in parameter capture."""

from __future__ import annotations

import dataclasses
import sqlite3

import psycopg2
import pytest
import redis
import sqlalchemy as sa

from otel_db import attributes as attr
from otel_db.instrumentation.parameter_capture import capture_statement_parameters
from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor
from tests.conftest import MARIADB_SQLALCHEMY_URL, POSTGRES_URL, REDIS_URL
from tests.integration.launcher import run_inline
from tests.support.console_output import console_spans


def _by_text(spans, fragment):
    return [s for s in spans.db_spans() if fragment in s.attributes.get(attr.DB_QUERY_TEXT, "")]


@pytest.mark.postgres
def test_psycopg2_literals_sanitized_placeholders_kept(spans):
    conn = psycopg2.connect(POSTGRES_URL)
    cur = conn.cursor()
    for n in (1, 2):
        cur.execute(f"SELECT relname FROM pg_class WHERE relpages >= {n} AND relname <> %s", ("x",))
    conn.close()
    one, two = _by_text(spans, "pg_class")
    assert one.attributes[attr.DB_QUERY_TEXT] == (
        "SELECT relname FROM pg_class WHERE relpages >= ? AND relname <> %s"
    )
    assert one.attributes[attr.DB_QUERY_SUMMARY] == "SELECT pg_class"
    assert one.attributes[attr.DB_COLLECTION_NAME] == "pg_class"
    assert one.name == "SELECT pg_class"
    assert one.attributes[attr.QUERY_FINGERPRINT] == two.attributes[attr.QUERY_FINGERPRINT]


def test_sqlite3_join_has_a_summary_and_no_single_collection(spans):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE a (id INTEGER)")
    conn.execute("CREATE TABLE b (id INTEGER)")
    conn.execute("SELECT * FROM a JOIN b ON a.id = b.id WHERE a.id IN (1, 2, 3)")
    conn.close()
    (span,) = _by_text(spans, "JOIN")
    assert (
        span.attributes[attr.DB_QUERY_TEXT]
        == "SELECT * FROM a JOIN b ON a.id = b.id WHERE a.id IN (?)"
    )
    assert span.attributes[attr.DB_QUERY_SUMMARY] == "SELECT a b"
    assert attr.DB_COLLECTION_NAME not in span.attributes
    assert span.name == "SELECT a b"


@pytest.mark.mariadb
def test_mariadb_through_sqlalchemy(spans):
    engine = sa.create_engine(MARIADB_SQLALCHEMY_URL)
    with engine.connect() as conn:
        conn.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_rows > 42")
        )
    engine.dispose()
    (span,) = _by_text(spans, "information_schema")
    assert span.attributes[attr.DB_QUERY_TEXT].endswith("WHERE table_rows > ?")
    assert span.attributes[attr.DB_QUERY_SUMMARY] == "SELECT information_schema.tables"
    assert span.name == "SELECT information_schema.tables"


@pytest.mark.redis
def test_redis_commands_and_pipelines(spans):
    client = redis.Redis.from_url(REDIS_URL)
    client.get("otel_db:text:1")
    with client.pipeline(transaction=False) as pipe:
        pipe.get("otel_db:text:1").get("otel_db:text:2")
        pipe.execute()
    client.close()
    single, pipeline = spans.db_spans()
    assert single.attributes[attr.DB_QUERY_SUMMARY] == "GET" and single.name == "GET"
    assert pipeline.attributes[attr.DB_QUERY_SUMMARY] == "BATCH GET"
    assert pipeline.attributes[attr.DB_QUERY_TEXT] == "GET ?\nGET ?"


@pytest.fixture
def parameter_capture(otel_session):
    listener = SQLAlchemyStatementInstrumentor._listener
    saved = listener._hooks
    listener._hooks = dataclasses.replace(
        saved, on_start=(*saved.on_start, capture_statement_parameters)
    )
    yield
    listener._hooks = saved


@pytest.mark.postgres
def test_sqlalchemy_parameters_captured_when_asked_secrets_redacted(spans, parameter_capture):
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.connect() as conn:
        conn.execute(
            sa.text("SELECT :email AS e, :password AS p, :note AS n"),
            {"email": "bob@example.org", "password": "hunter2", "note": "x" * 1000},
        )
    engine.dispose()
    (span,) = _by_text(spans, "AS e")
    assert span.attributes["db.query.parameter.email"] == "bob@example.org"
    assert span.attributes["db.query.parameter.password"] == "[REDACTED]"
    assert len(span.attributes["db.query.parameter.note"]) == 256


@pytest.mark.postgres
def test_psycopg2_parameters_captured_from_the_real_objects(tmp_path):
    result = run_inline(
        tmp_path,
        f"""
        import datetime, decimal, psycopg2
        conn = psycopg2.connect({POSTGRES_URL!r})
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT %(email)s AS marker_named, %(password)s AS p",
                    {{"email": "bob@example.org", "password": "hunter2"}})
        cur.execute("SELECT %s AS marker_positional, %s AS d",
                    (decimal.Decimal("12.50"), datetime.date(2026, 11, 22)))
        cur.execute("CREATE TEMP TABLE marker_generator (v int)")
        cur.execute("CREATE TEMP TABLE marker_list (v int)")
        rows = ((n,) for n in range(3))  # a generator: must not be consumed early
        cur.executemany("INSERT INTO marker_generator (v) VALUES (%s)", rows)
        cur.executemany("INSERT INTO marker_list (v) VALUES (%s)", [(7,), (8,)])
        cur.execute("SELECT (SELECT count(*) FROM marker_generator)"
                    " + (SELECT count(*) FROM marker_list)")
        print("ROWS", cur.fetchone()[0])
        conn.close()
        """,
        env={"OTEL_PYTHON_DB_CAPTURE_PARAMETERS": "true", "OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    assert "ROWS 5" in result.stdout  # the generator's rows all reached the table
    spans = console_spans(result.stdout)  # spans may be printed before or after ROWS

    def attributes(marker: str, operation: str = "SELECT") -> dict:
        (span,) = [
            s
            for s in spans
            if s["attributes"].get(attr.DB_QUERY_TEXT, "").startswith(operation)
            and marker in s["attributes"][attr.DB_QUERY_TEXT]
        ]
        return span["attributes"]

    named = attributes("marker_named")
    assert named["db.query.parameter.email"] == "bob@example.org"
    assert named["db.query.parameter.password"] == "[REDACTED]"
    positional = attributes("marker_positional")
    assert positional["db.query.parameter.0"] == "12.50"  # contrib's str() could not be read back
    assert positional["db.query.parameter.1"] == "2026-11-22"
    assert not any(
        key.startswith("db.query.parameter") for key in attributes("marker_generator", "INSERT")
    )
    assert attributes("marker_list", "INSERT")["db.query.parameter.0"] == "7"  # first row
    assert not any("db.statement.parameters" in span["attributes"] for span in spans)
