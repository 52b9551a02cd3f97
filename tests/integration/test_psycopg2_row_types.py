"""psycopg2 under otel_db returns what psycopg2 returns: every connection and cursor
class, every way of running a statement, against the real PostgreSQL; and each
statement still has its span (contrib issues #578 / #1479 are not inherited).

"Plain psycopg2" is the same connection class instantiated directly (``Class(dsn)``,
which is all ``psycopg2.connect`` does), so it never passes through otel_db.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import uuid
from typing import Any

import psycopg2
import psycopg2.extensions as ext
import psycopg2.extras as extras
import pytest
from psycopg2 import sql

import otel_db.settings
from otel_db import attributes as attr
from otel_db.settings import current_settings
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

DSN = ext.make_dsn(POSTGRES_URL)
LOG = logging.getLogger("tests.psycopg2_row_types")

CONNECTION_CLASSES = {
    "connection": None,
    "NamedTupleConnection": extras.NamedTupleConnection,
    "DictConnection": extras.DictConnection,
    "RealDictConnection": extras.RealDictConnection,
    "LoggingConnection": extras.LoggingConnection,
}
CURSOR_CLASSES = {
    "default": None,
    "cursor": ext.cursor,
    "NamedTupleCursor": extras.NamedTupleCursor,
    "DictCursor": extras.DictCursor,
    "RealDictCursor": extras.RealDictCursor,
    "LoggingCursor": extras.LoggingCursor,
}


def _shape(value: Any) -> Any:
    """A row (or a list of rows) as comparable facts: class name, repr, mapping view."""
    if isinstance(value, list):
        return [_shape(item) for item in value]
    if value is None:
        return None
    mapping = dict(value) if hasattr(value, "keys") else None
    return (type(value).__module__, type(value).__qualname__, repr(value), mapping)


def _plain(connection_class: type | None, cursor_factory: type | None = None) -> Any:
    conn = (connection_class or ext.connection)(DSN)
    if cursor_factory is not None:
        conn.cursor_factory = cursor_factory
    return conn


def _traced(connection_class: type | None, cursor_factory: type | None = None) -> Any:
    kwargs: dict[str, Any] = {}
    if connection_class is not None:
        kwargs["connection_factory"] = connection_class
    if cursor_factory is not None:
        kwargs["cursor_factory"] = cursor_factory
    return psycopg2.connect(POSTGRES_URL, **kwargs)


def _prepare(conn: Any) -> None:
    if isinstance(conn, extras.LoggingConnection):
        conn.initialize(LOG)


def _workload(conn: Any, cursor_factory: type | None, table: str) -> list[Any]:
    """Every way of running a statement and reading rows; what the application sees."""
    _prepare(conn)
    seen: list[Any] = [conn.cursor_factory]
    kwargs = {} if cursor_factory is None else {"cursor_factory": cursor_factory}
    with conn.cursor(**kwargs) as cur:
        seen.append((type(cur).__name__, type(cur).__module__))
        cur.execute(f"CREATE TEMP TABLE {table} (id int, name text)")
        cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(1, "a"), (2, "b"), (3, "c")])
        seen.append(cur.rowcount)
        cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
        seen += [[d[0] for d in cur.description], _shape(cur.fetchone())]
        seen += [_shape(cur.fetchmany(1)), _shape(cur.fetchall())]
        cur.execute(
            sql.SQL("SELECT id, name FROM {} WHERE id = %(id)s").format(sql.Identifier(table)),
            {"id": 2},
        )
        seen.append(_shape(list(cur)))
        cur.callproc("generate_series", (1, 2))
        seen.append(_shape(cur.fetchall()))
        out = io.StringIO()
        cur.copy_expert(f"COPY (SELECT id, name FROM {table} ORDER BY id) TO STDOUT", out)
        seen.append(out.getvalue())
    named = conn.cursor(f"{table}_named", **kwargs)  # server-side
    named.itersize = 2
    named.execute(f"SELECT id, name FROM {table} ORDER BY id")
    seen += [_shape(named.fetchone()), _shape(list(named))]
    named.close()
    conn.rollback()
    return seen


def _statement_spans(spans: Any, table: str) -> list[Any]:
    return [
        s
        for s in spans.db_spans()
        if table in (s.attributes.get(attr.DB_QUERY_TEXT) or "")
        and attr.TRANSACTION_STATEMENT_COUNT not in s.attributes
    ]


# A LoggingCursor logs through its connection: only a LoggingConnection has one.
COMBINATIONS = [
    (connection, cursor)
    for connection in CONNECTION_CLASSES
    for cursor in CURSOR_CLASSES
    if cursor != "LoggingCursor" or connection == "LoggingConnection"
]


@pytest.mark.parametrize(("connection_name", "cursor_name"), COMBINATIONS)
def test_rows_are_psycopg2s_and_every_statement_has_its_span(spans, connection_name, cursor_name):
    connection_class = CONNECTION_CLASSES[connection_name]
    cursor_class = CURSOR_CLASSES[cursor_name]
    table = f"otel_db_rows_{uuid.uuid4().hex[:10]}"
    plain = _plain(connection_class)
    try:
        expected = _workload(plain, cursor_class, table)
    finally:
        plain.close()
    assert spans.db_spans() == []  # plain psycopg2 really is untraced
    traced = _traced(connection_class)
    try:
        if connection_class is not None:
            assert isinstance(traced, connection_class)
        assert _workload(traced, cursor_class, table) == expected
    finally:
        traced.close()
    names = [s.name for s in _statement_spans(spans, table)]
    # CREATE, INSERT (executemany), SELECT, SELECT (Composed), COPY, DECLARE (named).
    assert len(names) == 6, names
    assert [n.split()[0] for n in names] == [
        "CREATE",
        "INSERT",
        "SELECT",
        "SELECT",
        "COPY",
        "SELECT",
    ]
    procs = [
        s for s in spans.db_spans() if s.attributes.get(attr.DB_QUERY_TEXT) == "generate_series"
    ]
    assert len(procs) == 1


@pytest.mark.parametrize("cursor_name", ["NamedTupleCursor", "DictCursor", "RealDictCursor"])
def test_connect_cursor_factory_is_kept_as_given(spans, cursor_name):
    cursor_class = CURSOR_CLASSES[cursor_name]
    table = f"otel_db_rows_{uuid.uuid4().hex[:10]}"
    plain = _plain(None, cursor_class)
    try:
        expected = _workload(plain, None, table)
    finally:
        plain.close()
    traced = _traced(None, cursor_class)
    try:
        assert traced.cursor_factory is cursor_class
        assert _workload(traced, None, table) == expected
    finally:
        traced.close()
    assert len(_statement_spans(spans, table)) == 6


def test_real_dict_cursor_per_cursor_is_traced_and_returns_real_dict_rows(spans):
    conn = psycopg2.connect(POSTGRES_URL)
    try:
        assert conn.cursor_factory is None
        cur = conn.cursor(cursor_factory=extras.RealDictCursor)
        cur.execute("SELECT 1 AS otel_db_real_dict_one, 'x' AS two")
        row = cur.fetchone()
    finally:
        conn.close()
    assert type(row) is extras.RealDictRow
    assert row == {"otel_db_real_dict_one": 1, "two": "x"}
    assert isinstance(cur, extras.RealDictCursor)
    (span,) = [
        s
        for s in spans.db_spans()
        if "otel_db_real_dict_one" in s.attributes.get(attr.DB_QUERY_TEXT, "")
    ]
    assert span.attributes[attr.DB_SYSTEM_NAME] == "postgresql"
    assert span.attributes[attr.DB_NAMESPACE] == "test"


def test_with_commenter_and_parameter_capture_rows_are_unchanged(spans, monkeypatch):
    """The statement cursor otel_db adds for those features sits under the
    application's class too."""
    settings = dataclasses.replace(current_settings(), sqlcommenter=True, capture_parameters=True)
    monkeypatch.setattr(otel_db.settings, "_current", settings)
    conn = psycopg2.connect(POSTGRES_URL, connection_factory=extras.NamedTupleConnection)
    try:
        cur = conn.cursor()
        cur.execute("SELECT %s AS otel_db_commented_id, current_query() AS q", (7,))
        row = cur.fetchone()
        dict_cur = conn.cursor(cursor_factory=extras.DictCursor)
        dict_cur.execute("SELECT %(v)s AS otel_db_commented_v", {"v": 8})
        dict_row = dict_cur.fetchone()
    finally:
        conn.close()
    assert row.otel_db_commented_id == 7
    assert "traceparent=" in row.q
    assert dict_row["otel_db_commented_v"] == 8 and type(dict_row) is extras.DictRow
    texts = [s.attributes.get(attr.DB_QUERY_TEXT, "") for s in spans.db_spans()]
    assert sum("otel_db_commented" in text for text in texts) == 2


def test_logging_connection_logs_and_is_traced(spans):
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("tests.psycopg2_logging_connection")
    logger.setLevel(logging.DEBUG)
    handler = Collect()
    logger.addHandler(handler)
    conn = psycopg2.connect(POSTGRES_URL, connection_factory=extras.LoggingConnection)
    try:
        conn.initialize(logger)
        cur = conn.cursor()
        assert isinstance(cur, extras.LoggingCursor)
        cur.execute("SELECT 1 AS otel_db_logged")
    finally:
        conn.close()
        logger.removeHandler(handler)
    assert records == [str(b"SELECT 1 AS otel_db_logged")]  # psycopg2 logs the bytes sent
    assert [
        s.name
        for s in spans.db_spans()
        if "otel_db_logged" in s.attributes.get(attr.DB_QUERY_TEXT, "")
    ] == ["SELECT"]


def test_function_factories_are_used_as_given(spans):
    """A connection or cursor factory that is a function cannot be subclassed: psycopg2
    gets it unchanged (those statements are not traced)."""
    made: list[str] = []

    def connection_factory(dsn: str, async_: bool = False) -> Any:
        made.append("connection")
        return extras.DictConnection(dsn, async_=async_)

    def cursor_factory(conn: Any, name: Any = None) -> Any:
        made.append("cursor")
        return extras.DictCursor(conn, name)

    conn = psycopg2.connect(POSTGRES_URL, connection_factory=connection_factory)
    try:
        assert type(conn) is extras.DictConnection
        cur = conn.cursor(cursor_factory=cursor_factory)
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone()["one"] == 1
    finally:
        conn.close()
    assert made == ["connection", "cursor"]


def test_stubbed_private_connect_sees_the_applications_arguments(otel_session):
    """What psycopg2's own suite does (tests/test_module.py): replace ``_connect`` and
    look at what ``connect()`` passes it."""
    calls: list[tuple[Any, ...]] = []

    def stub(dsn: str, connection_factory: Any = None, async_: bool = False) -> None:
        calls.append((dsn, connection_factory, async_))

    saved = psycopg2._connect
    psycopg2._connect = stub
    try:
        assert psycopg2.connect("dbname=otel_db_stub") is None
        psycopg2.connect(database="otel_db_stub", connection_factory=extras.DictConnection)
    finally:
        psycopg2._connect = saved
    assert calls == [
        ("dbname=otel_db_stub", None, False),
        ("dbname=otel_db_stub", extras.DictConnection, False),
    ]


def test_public_connect_fallback_keeps_rows_and_traces(spans, monkeypatch):
    """On a psycopg2 release not known to call ``_connect``, ``connect`` is wrapped."""
    from otel_db.instrumentation import psycopg2 as instrumentation

    instrumentor = instrumentation.Psycopg2StatementInstrumentor()
    instrumentor.uninstrument()
    monkeypatch.setattr(instrumentation, "PRIVATE_CONNECT_VERSIONS", frozenset())
    instrumentor.instrument(skip_dep_check=True)
    try:
        assert hasattr(psycopg2.connect, "__wrapped__")
        assert not hasattr(psycopg2._connect, "__wrapped__")
        conn = psycopg2.connect(POSTGRES_URL, connection_factory=extras.NamedTupleConnection)
        try:
            assert conn.cursor_factory is None
            cur = conn.cursor()
            cur.execute("SELECT 5 AS otel_db_fallback")
            assert cur.fetchone().otel_db_fallback == 5
        finally:
            conn.close()
    finally:
        instrumentor.uninstrument()
        monkeypatch.undo()
        instrumentor.instrument(skip_dep_check=True)
    assert hasattr(psycopg2._connect, "__wrapped__")
    assert [
        s.name
        for s in spans.db_spans()
        if "otel_db_fallback" in s.attributes.get(attr.DB_QUERY_TEXT, "")
    ] == ["SELECT"]


def test_uninstrumented_connections_keep_working_untraced(spans):
    from otel_db.instrumentation import psycopg2 as instrumentation

    conn = psycopg2.connect(POSTGRES_URL, connection_factory=extras.DictConnection)
    instrumentor = instrumentation.Psycopg2StatementInstrumentor()
    instrumentor.uninstrument()
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1 AS otel_db_after_uninstrument")
        assert cur.fetchone()["otel_db_after_uninstrument"] == 1
    finally:
        conn.close()
        instrumentor.instrument(skip_dep_check=True)
    assert [
        s
        for s in spans.db_spans()
        if "otel_db_after_uninstrument" in s.attributes.get(attr.DB_QUERY_TEXT, "")
    ] == []
