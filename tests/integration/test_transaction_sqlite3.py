"""sqlite3's own transactions (legacy mode: the driver's implicit BEGIN before DML)."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from opentelemetry import trace

from otel_db import attributes as attr
from otel_db.pipeline.containment import FAILURES


def _tx(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


def _statements(spans):
    return [s for s in spans.db_spans() if attr.TRANSACTION_STATEMENT_COUNT not in s.attributes]


def _by_text(spans, fragment: str):
    return [
        s for s in _statements(spans) if fragment in (s.attributes.get(attr.DB_QUERY_TEXT) or "")
    ]


@pytest.fixture
def conn(tmp_path):
    connection = sqlite3.connect(str(tmp_path / "tx.db"))  # default isolation: legacy
    connection.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    yield connection
    connection.close()


def _handler():
    return trace.get_tracer("t").start_as_current_span("handler")


def test_commit(spans, conn):
    spans.clear()
    with _handler():
        conn.execute("SELECT count(*) FROM t")  # no BEGIN yet: outside any transaction
        conn.execute("INSERT INTO t VALUES ('a')")  # the driver's implicit BEGIN
        conn.execute("SELECT k FROM t")
        conn.commit()
    (tx,) = _tx(spans)
    (handler,) = [s for s in spans.finished() if s.name == "handler"]
    assert tx.parent.span_id == handler.context.span_id
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert tx.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 2
    assert tx.attributes[attr.DB_SYSTEM_NAME] == "sqlite"
    (before,) = _by_text(spans, "count(")
    assert attr.TRANSACTION_ID not in before.attributes
    assert before.parent.span_id == handler.context.span_id
    inside = _by_text(spans, "INSERT") + _by_text(spans, "SELECT k")
    assert len(inside) == 2
    for span in inside:
        assert span.parent.span_id == tx.context.span_id
        assert span.attributes[attr.TRANSACTION_ID] == tx.attributes[attr.TRANSACTION_ID]
        assert span.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED


def test_rollback(spans, conn):
    spans.clear()
    with _handler():
        conn.execute("INSERT INTO t VALUES ('b')")
        conn.execute("UPDATE t SET k = 'c'")
        conn.rollback()
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    statements = _statements(spans)
    assert len(statements) == 2
    for span in statements:
        assert span.parent.span_id == tx.context.span_id
        assert span.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_with_block_commits_and_rolls_back(spans, conn):
    spans.clear()
    with conn:
        conn.execute("INSERT INTO t VALUES ('d')")
    with pytest.raises(sqlite3.IntegrityError), conn:
        conn.execute("INSERT INTO t VALUES ('e')")
        conn.execute("INSERT INTO t VALUES ('d')")  # duplicate: the block rolls back
    outcomes = [s.attributes[attr.TRANSACTION_OUTCOME] for s in _tx(spans)]
    assert outcomes == [attr.OUTCOME_COMMITTED, attr.OUTCOME_ROLLED_BACK]
    first, second, duplicate = sorted(_statements(spans), key=lambda s: s.start_time)
    assert first.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert second.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert duplicate.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK


def test_cursor_statements_and_close(spans, tmp_path):
    connection = sqlite3.connect(str(tmp_path / "close.db"))
    connection.execute("CREATE TABLE t (k TEXT)")
    spans.clear()
    cursor = connection.cursor()
    cursor.execute("INSERT INTO t VALUES (?)", ("x",))
    cursor.executemany("INSERT INTO t VALUES (?)", [("y",), ("z",)])
    connection.close()  # SQLite discards what was not committed
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    assert tx.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 2


def test_sql_commit_and_explicit_begin_in_autocommit_mode(spans, tmp_path):
    connection = sqlite3.connect(str(tmp_path / "auto.db"), isolation_level=None)
    try:
        connection.execute("CREATE TABLE t (k TEXT)")
        spans.clear()
        connection.execute("INSERT INTO t VALUES ('outside')")  # autocommit: no transaction
        connection.execute("BEGIN")
        connection.execute("INSERT INTO t VALUES ('inside')")
        connection.execute("COMMIT")
    finally:
        connection.close()
    (tx,) = _tx(spans)
    assert tx.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    outside, begin, inside, commit = sorted(_statements(spans), key=lambda s: s.start_time)
    assert attr.TRANSACTION_ID not in outside.attributes
    assert begin.parent.span_id == tx.context.span_id
    assert commit.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED
    assert inside.parent.span_id == tx.context.span_id
    assert inside.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_COMMITTED


def test_failed_statement_before_begin_leaves_no_transaction(spans, conn):
    spans.clear()
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("INSERT INTO no_such_table VALUES (1)")  # fails before BEGIN
    conn.execute("SELECT k FROM t")
    tx_spans = _tx(spans)
    assert [s.attributes[attr.TRANSACTION_OUTCOME] for s in tx_spans] == ["rolled_back"]
    (select,) = _by_text(spans, "SELECT k")
    assert attr.TRANSACTION_ID not in select.attributes
    assert not conn.in_transaction


def test_closed_connection_fails_as_sqlite3_does_and_logs_nothing(spans, caplog):
    conn = sqlite3.connect(":memory:")
    cursor = conn.cursor()
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (1)")  # a transaction is open when it closes
    conn.close()
    caplog.clear()
    failures = FAILURES.count  # logged once per kind: the count shows every later one
    calls = (
        lambda: cursor.execute("SELECT 1"),
        lambda: cursor.executemany("SELECT ?", [(1,)]),
        lambda: conn.execute("SELECT 1"),
        lambda: conn.executescript("SELECT 1;"),
        lambda: conn.commit(),
    )
    for call in calls:
        with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
            call()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert FAILURES.count == failures
    assert spans.open_spans() == []
