"""contrib's DB-API histograms under the distro (stable conventions): raw psycopg2 and
sqlite3 statements are recorded once each, through otel_db's interned shortcut."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import POSTGRES_URL
from tests.integration.launcher import run_inline
from tests.support.console_output import json_documents

DURATION = "db.client.operation.duration"
ROWS = "db.client.response.returned_rows"

# Finds contrib's integration behind the cursor (psycopg2: the tracing kept beside the
# connection; sqlite3: otel_db's cursor proxy) and tells whether its duration histogram is otel_db's
# wrapper and took the shortcut.
PROBE = """
def probe(cursor):
    candidates = [getattr(cursor, "_self_integration", None)]
    if type(cursor).__module__.startswith("psycopg2"):
        from otel_db.instrumentation.psycopg2 import _tracing_of
        tracing = _tracing_of(cursor.connection)
        candidates.append(getattr(getattr(tracing, "tracer", None), "_db_api_integration", None))
    for integration in filter(None, candidates):
        histogram = integration._duration_histogram
        bound = len(getattr(getattr(histogram, "_shared", None), "_bound", ()))
        print("PROBE", type(histogram).__name__, bound)
        return
    print("PROBE none 0")
"""


def _points(stdout: str, scope: str) -> dict[tuple[str, str | None], tuple[int, float]]:
    """{(metric, error.type): (count, sum)} for ``scope`` from the console exporter's JSON."""
    out: dict[tuple[str, str | None], tuple[int, float]] = {}
    for document in json_documents(stdout):
        for resource in document.get("resource_metrics", ()):
            for scope_metrics in resource["scope_metrics"]:
                if scope_metrics["scope"]["name"] != scope:
                    continue
                for metric in scope_metrics["metrics"]:
                    for point in metric["data"]["data_points"]:
                        key = (metric["name"], point["attributes"].get("error.type"))
                        count, total = out.get(key, (0, 0.0))
                        out[key] = (count + point["count"], total + point["sum"])
    return out


def _run(tmp_path, body: str) -> str:
    result = run_inline(
        tmp_path,
        PROBE + textwrap.dedent(body),
        env={"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "none"},
    )
    assert result.returncode == 0, result.stderr
    assert "PROBE InternedAttributesHistogram" in result.stdout, result.stdout[:500]
    assert "PROBE InternedAttributesHistogram 0" not in result.stdout  # it took the shortcut
    return result.stdout


@pytest.mark.postgres
def test_raw_psycopg2_statements_are_recorded_once_each(tmp_path):
    stdout = _run(
        tmp_path,
        f"""
        import psycopg2
        conn = psycopg2.connect({POSTGRES_URL!r})
        conn.autocommit = True
        cur = conn.cursor()
        for i in range(7):
            cur.execute("SELECT %s UNION ALL SELECT %s", (i, i + 1))
            cur.fetchall()
        try:
            cur.execute("SELECT * FROM otel_db_no_such_table")
        except psycopg2.Error:
            pass
        probe(cur)
        conn.close()
        """,
    )
    points = _points(stdout, "opentelemetry.instrumentation.psycopg2")
    assert points[(DURATION, None)][0] == 7
    assert points[(DURATION, "UndefinedTable")][0] == 1
    assert points[(ROWS, None)] == (7, 14.0)  # two rows per statement
    assert 0 < points[(DURATION, None)][1] < 30  # seconds, not nanoseconds


def test_raw_sqlite3_statements_are_recorded_once_each(tmp_path):
    stdout = _run(
        tmp_path,
        """
        import sqlite3
        conn = sqlite3.connect(":memory:")
        cur = conn.cursor()
        for i in range(5):
            cur.execute("SELECT ?", (i,))
            cur.fetchall()
        probe(cur)
        conn.close()
        """,
    )
    points = _points(stdout, "opentelemetry.instrumentation.sqlite3")
    assert points[(DURATION, None)][0] == 5
