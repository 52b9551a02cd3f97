"""OTEL_PYTHON_DB_SQLCOMMENTER: the server sees a traceparent comment naming the statement's
span; the exported db.query.text does not carry it; preparing drivers are left alone."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from otel_db import attributes as attr
from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor
from otel_db.sqlcommenter import append_traceparent
from tests.conftest import POSTGRES_URL
from tests.integration.launcher import run_inline
from tests.support.console_output import console_spans

PG_SQLALCHEMY = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
#: SQLAlchemy reflects SQLite's table options (WITHOUT ROWID, STRICT) from 2.1 on. 2.0's
#: dialect has no get_table_options and, plain too, misreads a computed column followed by
#: them (2.0.30: sqltext "a * 2) STORED"); the stored DDL is compared byte for byte anyway.
SQLITE_REFLECTS_TABLE_OPTIONS = tuple(int(p) for p in sa.__version__.split(".")[:2]) >= (2, 1)
OWN_QUERY = "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()"

pytestmark = pytest.mark.postgres


@pytest.fixture
def commenter(otel_session):
    listener = SQLAlchemyStatementInstrumentor._listener
    saved = listener._hooks
    listener._hooks = dataclasses.replace(saved, rewriters=(*saved.rewriters, append_traceparent))
    yield
    listener._hooks = saved


def test_sqlalchemy_statement_reaches_the_server_with_its_traceparent(spans, commenter):
    engine = sa.create_engine(PG_SQLALCHEMY)
    with engine.connect() as conn:
        seen = conn.execute(sa.text(OWN_QUERY)).scalar()
    engine.dispose()
    (span,) = [
        s
        for s in spans.db_spans()
        if "pg_stat_activity" in s.attributes.get(attr.DB_QUERY_TEXT, "")
    ]
    context = span.context
    assert seen.endswith(
        f"/*traceparent='00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}'*/"
    )
    assert "traceparent" not in span.attributes[attr.DB_QUERY_TEXT]


def test_asyncpg_prepared_statements_get_no_comment(spans, commenter):
    async def run() -> str:
        engine = create_async_engine(
            POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)
        )
        async with engine.connect() as conn:
            seen = (await conn.execute(sa.text(OWN_QUERY))).scalar()
        await engine.dispose()
        return seen

    assert "traceparent" not in asyncio.run(run())


def _traceparent_of(span: dict) -> str:
    """The comment naming ``span`` (its flags are the SDK's: sampled, and random ids)."""
    context = span["context"]
    return f"traceparent='00-{context['trace_id'][2:]}-{context['span_id'][2:]}-03'"


def test_raw_psycopg2_statements_carry_their_own_spans_traceparent(tmp_path):
    result = run_inline(
        tmp_path,
        f"""
        import sys
        import psycopg2
        from psycopg2 import sql
        conn = psycopg2.connect({POSTGRES_URL!r})
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute({OWN_QUERY!r})
        print("SERVER-SAW-TEXT", cur.fetchone()[0], file=sys.stderr)
        cur.execute(sql.SQL({OWN_QUERY!r} + " AND {{}} = {{}}").format(
            sql.Identifier("pid"), sql.Identifier("pid")))
        print("SERVER-SAW-COMPOSED", cur.fetchone()[0], file=sys.stderr)
        cur.execute({OWN_QUERY.encode()!r})
        print("SERVER-SAW-BYTES", cur.fetchone()[0], file=sys.stderr)
        cur.execute("CREATE TEMP TABLE commented_rows (seen text)")
        cur.executemany(
            "INSERT INTO commented_rows SELECT query FROM pg_stat_activity"
            " WHERE pid = pg_backend_pid() AND %s = %s", [(1, 1), (2, 2)])
        cur.execute("SELECT seen FROM commented_rows")
        print("SERVER-SAW-MANY", [row[0] for row in cur.fetchall()], file=sys.stderr)
        conn.close()
        """,
        env={"OTEL_PYTHON_DB_SQLCOMMENTER": "true", "OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    # (on stderr: the console exporter's thread writes spans to stdout meanwhile)
    seen = dict(
        line.split(" ", 1) for line in result.stderr.splitlines() if line.startswith("SERVER-SAW")
    )
    spans = console_spans(result.stdout)
    by_text = {}
    for span in spans:
        text = span["attributes"].get("db.query.text", "")
        assert "traceparent" not in text  # the exported text never carries the comment
        by_text.setdefault(text, []).append(span)
    # Each statement names its own span, and only its own (one comment, no driver facts).
    plain, from_bytes = by_text[OWN_QUERY]  # in the order they ran
    assert seen["SERVER-SAW-TEXT"] == f"{OWN_QUERY} /*{_traceparent_of(plain)}*/"
    (composed,) = [s for t, group in by_text.items() for s in group if '"pid"' in t]
    assert seen["SERVER-SAW-COMPOSED"].endswith(f"/*{_traceparent_of(composed)}*/")
    assert seen["SERVER-SAW-COMPOSED"].count("traceparent") == 1
    # Left alone: bytes statements and executemany batches.
    assert seen["SERVER-SAW-BYTES"] == OWN_QUERY
    assert from_bytes["context"]["span_id"] != plain["context"]["span_id"]
    assert (
        "traceparent" not in seen["SERVER-SAW-MANY"]
        and "pg_stat_activity" in seen["SERVER-SAW-MANY"]
    )


def test_sqlalchemy_on_psycopg2_under_the_launcher_gets_one_comment(tmp_path):
    result = run_inline(
        tmp_path,
        f"""
        import sqlalchemy as sa
        engine = sa.create_engine({PG_SQLALCHEMY!r})
        with engine.connect() as conn:
            print("SERVER-SAW", conn.execute(sa.text({OWN_QUERY!r})).scalar())
        engine.dispose()
        """,
        env={
            "OTEL_PYTHON_DB_SQLCOMMENTER": "true",
            "OTEL_PYTHON_DB_CAPTURE_PARAMETERS": "true",  # psycopg2's layer must stay out
            "OTEL_TRACES_EXPORTER": "console",
        },
    )
    assert result.returncode == 0, result.stderr
    (seen,) = [line for line in result.stdout.splitlines() if line.startswith("SERVER-SAW")]
    (span,) = [
        s for s in console_spans(result.stdout) if s["attributes"].get("db.query.text") == OWN_QUERY
    ]
    assert seen == f"SERVER-SAW {OWN_QUERY} /*{_traceparent_of(span)}*/"


def test_sampled_out_statements_run_as_written(tmp_path):
    result = run_inline(
        tmp_path,
        f"""
        import psycopg2
        conn = psycopg2.connect({POSTGRES_URL!r})
        cur = conn.cursor()
        cur.execute({OWN_QUERY!r} + " AND %s = %s", (1, 1))
        print("SERVER-SAW", cur.fetchone()[0])
        conn.close()
        """,
        env={
            "OTEL_PYTHON_DB_SQLCOMMENTER": "true",
            "OTEL_PYTHON_DB_CAPTURE_PARAMETERS": "true",
            "OTEL_TRACES_SAMPLER": "always_off",
            "OTEL_TRACES_EXPORTER": "console",
        },
    )
    assert result.returncode == 0, result.stderr
    assert f"SERVER-SAW {OWN_QUERY} AND 1 = 1" in result.stdout.splitlines()


def test_off_by_default(tmp_path):
    result = run_inline(
        tmp_path,
        f"""
        import json, psycopg2
        c = psycopg2.connect({POSTGRES_URL!r}).cursor()
        c.execute({OWN_QUERY!r})
        print(json.dumps(c.fetchone()[0]))
        """,
        env={"OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0]) == OWN_QUERY


def test_sqlite_ddl_is_stored_as_written_and_reflects_fully(spans, commenter, tmp_path):
    """SQLite keeps DDL text in sqlite_master and reflection parses it back: DDL gets no
    comment, so WITHOUT ROWID/STRICT, partial indexes and computed columns survive."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'commented.db'}")
    executed: list[str] = []

    @sa.event.listens_for(engine, "connect")
    def _record(dbapi_connection, _record):
        dbapi_connection.set_trace_callback(executed.append)

    create_table = (
        "CREATE TABLE otel_db_strict (id INTEGER PRIMARY KEY, a INT,"
        " b INT GENERATED ALWAYS AS (a * 2) STORED) WITHOUT ROWID, STRICT"
    )
    create_index = "CREATE INDEX ix_otel_db_strict_a ON otel_db_strict (a) WHERE a > 0"
    with engine.begin() as conn:
        conn.exec_driver_sql(create_table)
        conn.exec_driver_sql(create_index)
        conn.exec_driver_sql("INSERT INTO otel_db_strict (id, a) VALUES (1, 2)")
        stored = conn.exec_driver_sql("SELECT sql FROM sqlite_master ORDER BY name").scalars().all()
    inspector = sa.inspect(engine)
    if SQLITE_REFLECTS_TABLE_OPTIONS:
        options = inspector.get_table_options("otel_db_strict")
        columns = {c["name"]: c.get("computed") for c in inspector.get_columns("otel_db_strict")}
    (index,) = inspector.get_indexes("otel_db_strict")
    engine.dispose()
    assert stored == [create_index, create_table]  # byte for byte as written
    if SQLITE_REFLECTS_TABLE_OPTIONS:
        assert options == {"sqlite_with_rowid": False, "sqlite_strict": True}
        assert columns["b"] == {"sqltext": "a * 2", "persisted": True}
    assert str(index["dialect_options"]["sqlite_where"]) == "a > 0"
    first_words = {text.split()[0].upper() for text in executed if "traceparent=" in text}
    assert {"INSERT", "SELECT"} <= first_words  # queries and DML still carry it
    assert first_words <= {"INSERT", "SELECT", "UPDATE", "DELETE", "WITH"}
    assert any(text.startswith("CREATE TABLE otel_db_strict") for text in executed)
