"""Where the traceparent comment goes, and when a statement is left as written."""

from __future__ import annotations

from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags

from otel_db import sqlcommenter
from otel_db.sqlcommenter import commented


def _span(span_id: int) -> NonRecordingSpan:
    return NonRecordingSpan(
        SpanContext(trace_id=0xABC, span_id=span_id, is_remote=False, trace_flags=TraceFlags(0x01))
    )


def _comment(span_id: int) -> str:
    return f"/*traceparent='00-{0xABC:032x}-{span_id:016x}-01'*/"


def test_appended_at_the_end_or_before_a_trailing_semicolon():
    assert commented("SELECT 1", _span(1)) == f"SELECT 1 {_comment(1)}"
    assert commented("SELECT 1 ;  \n", _span(2)) == f"SELECT 1 {_comment(2)};"
    assert commented("SELECT 1\n  ", _span(3)) == f"SELECT 1 {_comment(3)}"


def test_each_execution_of_a_repeated_statement_names_its_own_span():
    first, second = commented("SELECT 2;", _span(4)), commented("SELECT 2;", _span(5))
    assert first == f"SELECT 2 {_comment(4)};" and second == f"SELECT 2 {_comment(5)};"


def test_statements_that_cannot_take_a_comment_are_left_as_written():
    for statement in (
        "",
        "   ",
        "SELECT 1 -- the comment would be swallowed by this one",
        f"SELECT 1 {_comment(9)}",  # already commented (by SQLAlchemy's rewriter)
    ):
        assert commented(statement, _span(6)) == statement
    assert commented("SELECT 1", INVALID_SPAN) == "SELECT 1"


def test_remembered_placements_are_bounded(monkeypatch):
    monkeypatch.setattr(sqlcommenter, "_placements", {})
    monkeypatch.setattr(sqlcommenter, "MAX_REMEMBERED_STATEMENTS", 3)
    for n in range(10):
        assert commented(f"SELECT {n}", _span(7)) == f"SELECT {n} {_comment(7)}"
        assert len(sqlcommenter._placements) <= 3
    long_statement = "SELECT " + "x, " * 3000 + "1"
    assert commented(long_statement, _span(8)).endswith(_comment(8))
    assert long_statement not in sqlcommenter._placements  # long texts are not kept


def test_statements_of_interleaved_traces_each_name_their_own_trace():
    def span(trace_id: int, span_id: int, flags: int) -> NonRecordingSpan:
        context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(flags))
        return NonRecordingSpan(context)

    for trace_id, span_id, flags in [(1, 2, 1), (3, 4, 0), (1, 5, 3), (1, 6, 1), (3, 7, 1)]:
        assert commented("SELECT 1", span(trace_id, span_id, flags)) == (
            f"SELECT 1 /*traceparent='00-{trace_id:032x}-{span_id:016x}-{flags:02x}'*/"
        )


def test_only_queries_and_dml_are_commented():
    for statement in (
        "SELECT 1",
        "  /* hint */ select 1",
        "-- why\nINSERT INTO t VALUES (1)",
        "update t set x = 1",
        "DELETE FROM t",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "(SELECT 1) UNION (SELECT 2)",
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
        "REPLACE INTO t VALUES (1)",
        "VALUES (1), (2)",
    ):
        assert commented(statement, _span(10)) == f"{statement} {_comment(10)}", statement
    for statement in (
        "CREATE TABLE t (x INT) WITHOUT ROWID, STRICT",
        "create index ix on t (x) where x > 0",
        "/* c */ ALTER TABLE t ADD COLUMN y INT",
        "DROP TABLE t",
        "CREATE TABLE t2 AS SELECT 1",
        "BEGIN",
        "SET search_path TO public",
        "PRAGMA foreign_keys = ON",
        "COPY t TO STDOUT",
        "TRUNCATE t",
        "COMMENT ON TABLE t IS 'x'",
        "123",
    ):
        assert commented(statement, _span(11)) == statement, statement
