"""SQLAlchemy statement and transaction spans started through the ``sdk.trace.start_span``
shortcut (attributes stored without the SDK's cleaning pass) are exactly the spans
``Tracer.start_span`` makes: same name, kind, attributes, status, events, parent and
scope, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace

from otel_db import attributes as attr
from otel_db.compat import verified
from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor
from otel_db.pipeline.span_start import SpanStarter
from otel_db.transactions.tracker import default_tracker
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.shortcut

#: Ids and measured times: different on every run, whichever path started the span.
#: The second engine on one database gets the pool name "<name>#2".
_POOL_NUMBER = re.compile(r"#[0-9]+$")
_VOLATILE = (attr.TRANSACTION_ID, attr.POOL_WAIT_MS, attr.QUERY_TOTAL_MS)


def _sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'span_start.db'}"


def _postgres_url(tmp_path: Any) -> str:
    return POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)


URLS = {
    "sqlite": _sqlite_url,
    "postgresql": pytest.param(_postgres_url, marks=pytest.mark.postgres),
}


@pytest.fixture
def public_starters() -> Iterator[Any]:
    """Switches the installed listener's and the tracker's starters to the public path."""
    listener = SQLAlchemyStatementInstrumentor._listener
    tracker = default_tracker()
    assert listener is not None

    def switch(public: bool) -> None:
        if public:
            with verified.forced(False):
                listener._starter = SpanStarter(listener._tracer)
                tracker._starter = SpanStarter(tracker._tracer)
            assert not listener._starter.shortcut and not tracker._starter.shortcut
        else:
            listener._starter = shortcut_statements
            tracker._starter = shortcut_transactions

    shortcut_statements, shortcut_transactions = listener._starter, tracker._starter
    try:
        yield switch
    finally:
        switch(False)


def _run_workload(engine: Any, table: str) -> None:
    tracer = trace.get_tracer("tests.span_start")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id int PRIMARY KEY, v varchar(10))"))
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (:id, :v)"), {"id": 1, "v": "one"})
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (:id, :v)"),
            [{"id": 2, "v": "a"}, {"id": 3, "v": "b"}],
        )
    with tracer.start_as_current_span("parent"), engine.connect() as conn:
        conn.execute(sa.text(f"select id, v from {table} where id > :id"), {"id": 0}).fetchall()
        nested = conn.begin_nested()
        conn.execute(sa.text(f"UPDATE {table} SET v = :v WHERE id = 1"), {"v": "x"})
        nested.rollback()
        conn.commit()
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (:id, :v)"), {"id": 1, "v": "dup"})
    with pytest.raises(sa.exc.DBAPIError), engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM otel_db_span_start_no_such_table"))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {table}"))


def _comparable(span: Any, table: str) -> tuple:
    def plain(value: Any) -> Any:
        return value.replace(table, "TABLE") if isinstance(value, str) else value

    attributes = [
        (
            key,
            _POOL_NUMBER.sub("", value)
            if key == attr.DB_CLIENT_CONNECTION_POOL_NAME
            else plain(value),
        )
        for key, value in span.attributes.items()
        if key not in _VOLATILE
    ]
    events = [
        (
            event.name,
            {
                key: plain(value)
                for key, value in event.attributes.items()
                if key != "exception.stacktrace"
            },
        )
        for event in span.events
    ]
    return (
        plain(span.name),
        span.kind,
        attributes,  # in order: the shortcut stores them as the SDK would
        span.dropped_attributes,
        span.status.status_code,
        plain(span.status.description),
        events,
        span.parent is not None,
        span.context.trace_flags,
        span.instrumentation_scope,
        span.resource.attributes,
    )


def _spans_of_workload(spans: Any, url: str, table: str) -> list:
    engine = sa.create_engine(url)
    try:
        spans.clear()
        _run_workload(engine, table)
        return [_comparable(span, table) for span in spans.db_spans()]
    finally:
        engine.dispose()


@pytest.mark.parametrize("make_url", list(URLS.values()), ids=list(URLS))
def test_shortcut_spans_are_start_spans_spans(spans, public_starters, tmp_path, make_url):
    url = make_url(tmp_path)
    table = f"otel_db_span_start_{uuid.uuid4().hex[:8]}"  # one name: one fingerprint
    shortcut = _spans_of_workload(spans, url, table)
    listener = SQLAlchemyStatementInstrumentor._listener
    assert listener._starter.shortcut and default_tracker()._starter.shortcut
    public_starters(True)
    public = _spans_of_workload(spans, url, table)
    transactions = [span for span in shortcut if "TRANSACTION" in span[0]]
    assert len(shortcut) >= 12 and len(transactions) >= 5
    for got, expected in zip(shortcut, public, strict=True):
        assert got[2] == expected[2]
        assert got == expected
