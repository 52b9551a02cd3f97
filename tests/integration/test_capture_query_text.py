"""OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT=false: no statement text leaves the process
(no db.query.text, no legacy db.statement, no statement echoed in error messages), while
the summary and the fingerprint stay. Run under the real launcher, as a user would."""

from __future__ import annotations

import json

import pytest

from otel_db import attributes as attr
from tests.conftest import POSTGRES_URL, REDIS_URL
from tests.integration.launcher import run_inline
from tests.support.console_output import console_spans

APP = f"""
import psycopg2, redis, sqlalchemy as sa
conn = psycopg2.connect({POSTGRES_URL!r})
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT relname FROM pg_class WHERE relname = 'marker_text_off' AND relpages > 7")
try:
    cur.execute("SELECT marker_missing_col FROM pg_class WHERE relname = 'marker_text_off'")
except psycopg2.Error:
    pass
conn.close()
engine = sa.create_engine({POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://")!r})
with engine.connect() as c:
    c.execute(sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = 'marker_text_off'"))
    try:
        c.execute(sa.text("SELECT marker_nope FROM pg_namespace WHERE nspname = 'x7'"))
    except sa.exc.DBAPIError:
        pass
engine.dispose()
r = redis.Redis.from_url({REDIS_URL!r})
r.get("marker_text_off:key")
print("DONE")
"""


def _run(tmp_path, capture: str) -> list[dict]:
    result = run_inline(
        tmp_path,
        APP,
        env={"OTEL_TRACES_EXPORTER": "console", "OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT": capture},
    )
    assert result.returncode == 0, result.stderr
    assert "DONE" in result.stdout
    return [s for s in console_spans(result.stdout) if "db.system.name" in s["attributes"]]


@pytest.mark.postgres
@pytest.mark.redis
def test_no_statement_text_is_exported_when_capture_is_off(tmp_path):
    db_spans = _run(tmp_path, "false")
    summaries = {s["attributes"].get(attr.DB_QUERY_SUMMARY) for s in db_spans}
    assert {"SELECT pg_class", "SELECT pg_namespace", "GET"} <= summaries
    statements = [s for s in db_spans if attr.DB_QUERY_SUMMARY in s["attributes"]]
    for span in statements:
        assert attr.DB_QUERY_TEXT not in span["attributes"], span
        assert attr.LEGACY_DB_STATEMENT not in span["attributes"], span
        assert len(span["attributes"][attr.QUERY_FINGERPRINT]) == 16
    failed = [s for s in db_spans if s["status"]["status_code"] == "ERROR"]
    assert len(failed) == 2  # the raw driver's and SQLAlchemy's
    exported = json.dumps(db_spans)
    # (The column the error names is an identifier and may stay; the statement may not.)
    for fragment in ("relpages", "FROM pg_class", "FROM pg_namespace", "marker_text_off:key"):
        assert fragment not in exported
    assert "LINE 1: ?" in exported  # PostgreSQL's echo of the statement, emptied
    assert any(s["attributes"].get(attr.ERROR_CATEGORY) == "syntax" for s in failed)


@pytest.mark.postgres
@pytest.mark.redis
def test_statement_text_is_exported_by_default(tmp_path):
    db_spans = _run(tmp_path, "true")
    texts = [s["attributes"].get(attr.DB_QUERY_TEXT, "") for s in db_spans]
    assert any("relpages > ?" in text for text in texts)
    assert any("FROM pg_namespace" in text for text in texts)
