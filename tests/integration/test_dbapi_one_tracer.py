"""One tracer per DB-API instrumentation, not per connection: connecting never asks the
SDK for a tracer, whose ``get_tracer`` builds a deprecated ``InstrumentationInfo``
each time (a DeprecationWarning that suites run with warnings as errors, or patching
``warnings.warn`` as SQLAlchemy's does, see as their own)."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable
from typing import Any
from unittest import mock

import psycopg2
import pytest
from opentelemetry.instrumentation import dbapi

from otel_db import attributes as attr
from otel_db.instrumentation.dbapi_integration import per_connection_copy
from tests.conftest import POSTGRES_URL


def _sqlite3_statement() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("SELECT 1 AS otel_db_one_tracer").fetchall()
    finally:
        conn.close()


def _psycopg2_statement() -> None:
    conn = psycopg2.connect(POSTGRES_URL)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 AS otel_db_one_tracer")
            cur.fetchall()
    finally:
        conn.close()


STATEMENTS = {
    "sqlite3": _sqlite3_statement,
    "psycopg2": pytest.param(_psycopg2_statement, marks=pytest.mark.postgres),
}


@pytest.mark.parametrize("statement", STATEMENTS.values(), ids=STATEMENTS.keys())
def test_connect_and_execute_warn_nothing(spans, statement: Callable[[], None]):
    statement()  # the process's first statement may set up otel_db's own tracers
    spans.clear()
    raised: list[Any] = []
    with mock.patch("warnings.warn", lambda *args, **kwargs: raised.append(args)):
        statement()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        statement()
    assert raised == []
    marked = [
        s
        for s in spans.db_spans()
        if "otel_db_one_tracer" in s.attributes.get(attr.DB_QUERY_TEXT, "")
    ]
    assert len(marked) == 2
    assert len({s.instrumentation_scope for s in marked}) == 1


@pytest.mark.parametrize("statement", STATEMENTS.values(), ids=STATEMENTS.keys())
def test_connect_asks_for_no_tracer_or_meter(spans, statement: Callable[[], None]):
    statement()
    with (
        mock.patch.object(dbapi, "get_tracer", side_effect=AssertionError("get_tracer")),
        mock.patch.object(dbapi, "get_meter", side_effect=AssertionError("get_meter")),
    ):
        statement()
        statement()


def test_per_connection_copies_share_the_tracer_but_not_the_facts():
    class Integration:
        def __init__(self) -> None:
            self.tracer = object()
            self.span_attributes: dict[str, Any] = {}
            self.connection_props: dict[str, Any] = {}
            self.names: list[str] = []

    prototype = Integration()
    first, second = per_connection_copy(prototype), per_connection_copy(prototype)
    first.span_attributes["server.port"] = 1
    first.connection_props["database"] = "a"
    first.names.append("a")
    assert first.tracer is second.tracer is prototype.tracer
    assert second.span_attributes == second.connection_props == {} and second.names == []
    assert prototype.span_attributes == {}
