"""OTEL_PYTHON_DB_SQLCOMMENTER: the server sees a traceparent comment naming the statement's
span; the exported db.query.text does not carry it; preparing drivers are left alone."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import textwrap

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from otel_db import attributes as attr
from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor
from otel_db.sqlcommenter import append_traceparent
from tests.conftest import POSTGRES_URL
from tests.integration.launcher import run_script

PG_SQLALCHEMY = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
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


def test_contrib_psycopg2_commenter_is_switched_on_by_the_distro(tmp_path):
    script = tmp_path / "commented.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import psycopg2
            conn = psycopg2.connect({POSTGRES_URL!r})
            cur = conn.cursor()
            cur.execute({OWN_QUERY!r})
            print("SERVER-SAW", cur.fetchone()[0])
            conn.close()
            """
        )
    )
    result = run_script(
        str(script),
        env={"OTEL_PYTHON_DB_SQLCOMMENTER": "true", "OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    (seen,) = [line for line in result.stdout.splitlines() if line.startswith("SERVER-SAW")]
    assert "traceparent='00-" in seen
    assert "psycopg2=" not in seen and "libpq_version" not in seen  # only the traceparent
    exported = result.stdout[result.stdout.index("{") :]
    assert '"db.query.text"' in exported and "traceparent" not in exported


def test_off_by_default(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(
        f"import psycopg2\nc = psycopg2.connect({POSTGRES_URL!r}).cursor()\n"
        f"c.execute({OWN_QUERY!r})\nprint(json.dumps(c.fetchone()[0]))\n".replace(
            "import psycopg2", "import json, psycopg2"
        )
    )
    result = run_script(str(script), env={"OTEL_TRACES_EXPORTER": "console"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0]) == OWN_QUERY
