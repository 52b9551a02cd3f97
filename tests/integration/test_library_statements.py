"""Statements SQLAlchemy issues on its own (pool pre-ping, dialect start-up), against the
real PostgreSQL: traced and marked, never counted as the application's queries."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.orm import Session

from otel_db import attributes as attr
from otel_db.testing import QueryCapture
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

SA_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture
def engine(spans):  # `spans` installs the session's pipeline first
    engine = sa.create_engine(SA_URL, pool_pre_ping=True, pool_size=1)
    yield engine
    engine.dispose()


def _library_issued(spans):
    return [s for s in spans.db_spans() if s.attributes.get(attr.QUERY_LIBRARY_ISSUED)]


def test_pre_ping_is_traced_marked_and_not_counted(spans, engine):
    with engine.connect() as conn:  # first connection: dialect start-up, no ping
        conn.execute(sa.text("SELECT 1 AS warm_up")).all()
    spans.clear()
    # The Session checks the pooled connection out: a ping.
    with (
        trace.get_tracer("t").start_as_current_span("GET /one") as request,
        Session(engine) as session,
    ):
        session.execute(sa.text("SELECT 2 AS the_app_query")).all()
    (ping,) = _library_issued(spans)
    assert ping.attributes.get(attr.DB_QUERY_TEXT) == "SELECT ?"
    assert ping.parent is not None  # traced where it happened, under the request
    (exported_request,) = [s for s in spans.finished() if s.name == "GET /one"]
    assert exported_request.context.span_id == request.get_span_context().span_id
    assert exported_request.attributes[attr.QUERY_COUNT] == 1


def test_assert_db_queries_counts_one_orm_query_with_pre_ping(engine):
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1 AS warm_up")).all()
    with QueryCapture() as captured, Session(engine) as session:
        session.execute(sa.text("SELECT 3 AS only_this")).all()
    assert captured.count == 1, captured.listing()
    assert captured.statements == ["SELECT ? AS only_this"]


def test_dialect_start_up_is_not_counted(spans, engine):
    spans.clear()
    with QueryCapture() as captured, engine.connect() as conn:  # the engine's first connect
        conn.execute(sa.text("SELECT 4 AS first_query")).all()
    assert captured.count == 1, captured.listing()
    start_up = _library_issued(spans)
    assert start_up, "the dialect's start-up statements are traced"
    assert any("version" in (s.attributes.get(attr.DB_QUERY_TEXT) or "") for s in start_up)
