"""analyze_statement, analyze_redis_command and fingerprints."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_db.sql.analysis import StatementShape, analyze_redis_command, analyze_statement
from otel_db.sql.fingerprint import fingerprint

HEX16 = re.compile(r"^[0-9a-f]{16}$")


def test_analyze_statement() -> None:
    shape = analyze_statement("SELECT name FROM users WHERE id = 42 AND email = 'a@b.c'")
    assert shape == StatementShape(
        sanitized_text="SELECT name FROM users WHERE id = ? AND email = ?",
        operation="SELECT",
        summary="SELECT users",
        collection="users",
        fingerprint=shape.fingerprint,
    )
    assert HEX16.match(shape.fingerprint)


def test_analysis_is_cached_and_immutable() -> None:
    first = analyze_statement("SELECT * FROM cached_t WHERE a = 1")
    assert analyze_statement("SELECT * FROM cached_t WHERE a = 1") is first
    with pytest.raises(AttributeError):
        first.operation = "DELETE"  # type: ignore[misc]


def test_long_statements_use_the_small_large_cache() -> None:
    long_statement = "SELECT " + ", ".join(f"column_{i}" for i in range(300)) + " FROM wide"
    assert len(long_statement) > 1024
    first = analyze_statement(long_statement)
    assert analyze_statement(long_statement) is first
    assert first.summary == "SELECT wide"


def test_analyze_statement_never_raises() -> None:
    shape = analyze_statement(None)  # type: ignore[arg-type]
    assert shape.sanitized_text == "?"
    assert HEX16.match(shape.fingerprint)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 2"),
        ("SELECT * FROM t WHERE id = 1", "select  *\n from T where ID=99 -- comment"),
        ("SELECT * FROM t WHERE id IN (1)", "SELECT * FROM t WHERE id IN (1, 2, 3, 4)"),
        ("SELECT * FROM t WHERE id IN (%s)", "SELECT * FROM t WHERE id IN (%s, %s, %s)"),
        ("SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = $$y$$"),
        ("SELECT * FROM t WHERE a = %s", "SELECT * FROM t WHERE a = %(a)s"),
        ("INSERT INTO t VALUES (1, 'a')", "INSERT INTO t VALUES (2, 'b'), (3, 'c')"),
        ("INSERT INTO t VALUES (%s, %s)", "INSERT INTO t VALUES (%s, %s), (%s, %s)"),
    ],
)
def test_fingerprint_equal_for_same_shape(a: str, b: str) -> None:
    assert fingerprint(a) == fingerprint(b)
    assert analyze_statement(a).fingerprint == fingerprint(a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SELECT * FROM t WHERE id = 1", "SELECT * FROM u WHERE id = 1"),
        ("SELECT a FROM t", "SELECT b FROM t"),
        ("SELECT * FROM t WHERE a = 1", "DELETE FROM t WHERE a = 1"),
        ('SELECT * FROM "T"', 'SELECT * FROM "t"'),
    ],
)
def test_fingerprint_differs_for_different_shape(a: str, b: str) -> None:
    assert fingerprint(a) != fingerprint(b)


@given(st.integers(), st.text(alphabet="abcdefgh' \\", max_size=20))
def test_fingerprint_ignores_literal_values(number: int, text: str) -> None:
    quoted = "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    template = "SELECT * FROM t WHERE a = {} AND b = {}"
    assert fingerprint(template.format(number, quoted)) == fingerprint(template.format(0, "''"))


@given(st.text(max_size=300))
def test_analysis_total(text: str) -> None:
    shape = analyze_statement(text)
    assert HEX16.match(shape.fingerprint)
    assert shape.summary is None or len(shape.summary) <= 255


@pytest.mark.parametrize(
    ("command", "sanitized", "operation"),
    [
        ("GET user:42", "GET ?", "GET"),
        ("SET ? ?", "SET ? ?", "SET"),
        ("set session:1 secret-value EX 60", "SET ? ? ? ?", "SET"),
        ("HGETALL h", "HGETALL ?", "HGETALL"),
        ("PING", "PING", "PING"),
        ("  MULTI  ", "MULTI", "MULTI"),
    ],
)
def test_analyze_redis_command(command: str, sanitized: str, operation: str) -> None:
    shape = analyze_redis_command(command)
    assert shape.sanitized_text == sanitized
    assert shape.operation == shape.summary == operation
    assert shape.collection is None
    assert HEX16.match(shape.fingerprint)


def test_redis_fingerprint_depends_only_on_the_command() -> None:
    keys = {analyze_redis_command(f"GET user:{i}").fingerprint for i in range(50)}
    assert len(keys) == 1
    assert analyze_redis_command("get other").fingerprint in keys
    assert analyze_redis_command("SET user:1 x").fingerprint not in keys


def test_redis_empty_and_bad_input() -> None:
    assert analyze_redis_command("").operation is None
    assert analyze_redis_command(None).sanitized_text in ("", "?")  # type: ignore[arg-type]


_sqlish = st.lists(
    st.sampled_from(
        ["SELECT", "a", ",", "FROM", "t", "WHERE", "=", "(", ")", "IN", "VALUES", "1", "-",
         "'x'", "%s", "$1", ":n", '"q"', "NULL", "TRUE", ";", "INSERT", "INTO", "-- c\n"]
    ),
    max_size=30,
).map(" ".join)  # fmt: skip


@given(_sqlish)
def test_statement_fingerprint_matches_standalone_fingerprint(text: str) -> None:
    # analyze_statement fingerprints the sanitized tokens; fingerprint() the raw ones.
    assert analyze_statement(text).fingerprint == fingerprint(text)
