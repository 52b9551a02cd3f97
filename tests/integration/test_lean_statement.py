"""Raw psycopg2 statements traced by otel_db's lean tracer export exactly the spans
contrib's ``CursorTracer`` path exports (same name, kind, attributes, status, events,
parent), on a real PostgreSQL."""

from __future__ import annotations

import dataclasses

import psycopg2
import pytest
from opentelemetry import trace

from otel_db.instrumentation import psycopg2 as traced_psycopg2
from otel_db.instrumentation.lean_statement import LeanStatementTracer
from tests.conftest import POSTGRES_URL

pytestmark = [pytest.mark.postgres, pytest.mark.shortcut]

TABLE = "otel_db_lean_statement"


def _run_workload(connection) -> None:
    tracer = trace.get_tracer("tests.lean")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, v text)")
        cursor.execute(f"DELETE FROM {TABLE}")
        cursor.execute(f"INSERT INTO {TABLE} VALUES (%s, %s)", (1, "one"))
        cursor.executemany(f"INSERT INTO {TABLE} VALUES (%s, %s)", [(2, "a"), (3, "b")])
        cursor.execute(f"select id, v from {TABLE} where id > %s", (0,))
        cursor.fetchall()
        cursor.execute(f"/* leading */ SELECT count(*) FROM {TABLE}")
        cursor.fetchall()
        with tracer.start_as_current_span("parent"):
            cursor.execute("SELECT %(n)s::int", {"n": 5})
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cursor.execute(f"INSERT INTO {TABLE} VALUES (%s, %s)", (1, "dup"))
        with pytest.raises(psycopg2.errors.UndefinedTable):
            cursor.execute("SELECT * FROM otel_db_lean_no_such_table")


def _comparable(span) -> tuple:
    attributes = dict(span.attributes)
    for volatile in ("otel_db.transaction.id",):
        attributes.pop(volatile, None)
    events = [
        (
            event.name,
            {k: v for k, v in event.attributes.items() if k != "exception.stacktrace"},
        )
        for event in span.events
    ]
    parent_name = None
    return (
        span.name,
        span.kind,
        sorted(attributes.items(), key=lambda item: item[0]),
        span.status.status_code,
        span.status.description,
        events,
        parent_name if span.parent is None else "has parent",
        span.instrumentation_scope.name,
        span.instrumentation_scope.version,
        span.instrumentation_scope.schema_url,
    )


def _spans_of_workload(spans, lean: bool) -> list[tuple]:
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    try:
        tracing = traced_psycopg2._TRACING[connection]
        assert isinstance(tracing.lean, LeanStatementTracer)
        if not lean:
            traced_psycopg2._TRACING[connection] = dataclasses.replace(tracing, lean=None)
        spans.clear()
        _run_workload(connection)
        return [_comparable(span) for span in spans.db_spans()]
    finally:
        connection.close()


def test_lean_spans_are_contribs_spans(spans):
    lean = _spans_of_workload(spans, lean=True)
    contrib = _spans_of_workload(spans, lean=False)
    assert len(lean) == 9
    assert lean == contrib


def test_lean_tracer_keeps_each_text_once(spans):
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    try:
        lean = traced_psycopg2._TRACING[connection].lean
        with connection.cursor() as cursor:
            for i in range(3):
                cursor.execute("SELECT %s", (i,))
        assert list(lean._templates) == ["SELECT %s"]
    finally:
        connection.close()
