"""Issue 16, the differential proof: the databases themselves say what a literal is.

Hypothesis writes statements holding random canaries in every literal form a dialect
has (escaped quotes, backslashes, newlines, comment and dollar markers around them),
in comments too. Each statement runs on the real server through the instrumented
driver and the session's otel_db pipeline: the server's answer proves the statement
valid and that the canary was inside a literal (``SELECT <literal>`` returns it). Then
no canary may be found in what otel_db made of it: the sanitized text, the summary,
the collection, every exported field of the span, and the scrubbed message of an
error the server returned for the same literal (``<literal>::int``, a syntax error
echoing it, a duplicate key holding it, the value sent as a bound parameter).

Examples are few and derandomized (tests/conftest.py's hypothesis profile), so a
failure reproduces and the whole module stays well under a minute.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import pymysql
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_db.sql.analysis import analyze_statement
from otel_db.sql.errors import scrub_error_message
from otel_db.sql.sanitize import sanitize
from tests.conftest import MARIADB, MARIADB_SQLALCHEMY_URL, POSTGRES_URL, exported_fields

_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

CANARY = st.text(alphabet="abcdefghjkmnpqrstuvwxyz23456789", min_size=8, max_size=10).map(
    lambda s: "zq" + s
)
# What surrounds a canary inside a literal: every character that ends or escapes
# something in some dialect.
NOISE = st.text(alphabet=list("'\"\\\n\r*/$-#;(), x`[]?:"), max_size=5)
NUMBER = st.integers(min_value=10**8, max_value=10**12)


@dataclass(frozen=True)
class Literal:
    sql: str  # the literal as written in the statement
    canary: str  # what must never be exported
    value: object  # what SELECT <literal> returns (None: only check the canary is in it)


def _quoted(quote: str, value: str, *, backslash: bool) -> str:
    if backslash:
        value = value.replace("\\", "\\\\")
    return quote + value.replace(quote, quote + quote) + quote


def _dollar(value: str) -> str:
    tag = "tg"
    while f"${tag}$" in value or value.endswith(f"${tag}"):
        tag += "g"
    return f"${tag}${value}${tag}$"


def _u_amp(value: str) -> str:
    return "U&'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _bits(number: int) -> str:
    return format(number, "b")


def _bits_of_hex(digits: str) -> str:
    return format(int(digits, 16), f"0{4 * len(digits)}b")


@st.composite
def literals(draw, dialect: str) -> Literal:
    canary, before, after = draw(CANARY), draw(NOISE), draw(NOISE)
    text = before + canary + after
    number = draw(NUMBER)
    forms: dict[str, list[Callable[[], Literal]]] = {
        "postgresql": [
            lambda: Literal(_quoted("'", text, backslash=False), canary, text),
            lambda: Literal("E" + _quoted("'", text, backslash=True), canary, text),
            lambda: Literal(_u_amp(text), canary, text),
            lambda: Literal(_dollar(text), canary, text),
            lambda: Literal("N" + _quoted("'", canary, backslash=False), canary, None),
            lambda: Literal(f"B'{_bits(number)}'", _bits(number), _bits(number)),
            lambda: Literal(f"X'{number:x}'", f"{number:x}", _bits_of_hex(f"{number:x}")),
            lambda: Literal(str(number), str(number), number),
            lambda: Literal(f"{number}.5", str(number), None),
            lambda: Literal(f"-{number}e3", str(number), None),
        ],
        "mysql": [
            lambda: Literal(_quoted("'", text, backslash=True), canary, text),
            lambda: Literal(_quoted('"', text, backslash=True), canary, text),
            lambda: Literal("_utf8mb4" + _quoted("'", text, backslash=True), canary, text),
            lambda: Literal("N" + _quoted("'", text, backslash=True), canary, text),
            lambda: Literal(f"X'{number:012x}'", f"{number:012x}", bytes.fromhex(f"{number:012x}")),
            lambda: Literal(f"0x{number:012x}", f"{number:012x}", bytes.fromhex(f"{number:012x}")),
            lambda: Literal(f"b'{_bits(number)}'", _bits(number), None),
            lambda: Literal(str(number), str(number), number),
            lambda: Literal(f"{number}.25", str(number), None),
        ],
        "sqlite": [
            lambda: Literal(_quoted("'", text, backslash=False), canary, text),
            lambda: Literal(_quoted('"', text, backslash=False), canary, text),
            lambda: Literal(f"X'{number:012x}'", f"{number:012x}", bytes.fromhex(f"{number:012x}")),
            lambda: Literal(str(number), str(number), number),
            lambda: Literal(f"{number}.25", str(number), None),
        ],
    }
    return draw(st.sampled_from(forms[dialect]))()


COMMENTS = {
    "postgresql": ["-- {c}\n", "/* {c} */", "/* a /* {c} */ {c} */", "--{c}\r"],
    "mysql": ["-- {c}\n", "/* {c} */", "# {c}\n", "#{c}\n"],
    "sqlite": ["-- {c}\n", "/* {c} */", "--{c}\n"],
}


@st.composite
def statements(draw, dialect: str) -> tuple[str, list[Literal], list[str]]:
    """``SELECT <literal>, <literal> <comment>, ...``: the text, its literals, and the
    canaries its comments hold."""
    items = draw(st.lists(literals(dialect), min_size=1, max_size=10))
    parts, comment_canaries = [], []
    for literal in items:
        if draw(st.integers(0, 3)) == 0:
            canary = draw(CANARY)
            comment = draw(st.sampled_from(COMMENTS[dialect])).format(c=canary)
            parts.append(f"{literal.sql} {comment}")
            comment_canaries.append(canary)
        else:
            parts.append(literal.sql)
    separator = draw(st.sampled_from([", ", ",", ",\n  ", " ,\r\n"]))
    return "SELECT " + separator.join(parts), items, comment_canaries


def _assert_hidden(canaries: list[str], system: str, statement: str, spans=None) -> None:
    shape = analyze_statement(statement, system)
    exported = [sanitize(statement, system), shape.sanitized_text]
    exported += [shape.summary or "", shape.collection or "", shape.operation or ""]
    if spans is not None:
        db_spans = spans.db_spans()
        assert db_spans, "the statement made no span"
        exported += [field for span in db_spans for field in exported_fields(span)]
    for canary in canaries:
        for field in exported:
            assert canary not in field, (canary, statement, field)


def _check_values(row: tuple, items: list[Literal]) -> None:
    assert len(row) == len(items)
    for got, literal in zip(row, items, strict=True):
        if literal.value is not None:
            if isinstance(got, memoryview):
                got = bytes(got)
            assert got == literal.value, (literal.sql, got)
        elif isinstance(got, str):
            assert literal.canary in got


def _assert_error_hidden(canary: str, system: str, error: BaseException) -> None:
    for message in (str(error), *(str(a) for a in getattr(error, "args", ()))):
        scrubbed = scrub_error_message(message, system)
        assert canary not in scrubbed, (message, scrubbed)


# --- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg():
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    table = f"otel_db_diff_{uuid.uuid4().hex[:8]}"
    cursor = connection.cursor()
    cursor.execute(f"CREATE TABLE {table} (v text PRIMARY KEY)")
    yield connection, table
    cursor.execute(f"DROP TABLE {table}")
    connection.close()


@pytest.mark.postgres
@_SETTINGS
@given(statement=statements("postgresql"))
def test_postgresql_literals_never_leave(pg, spans, statement) -> None:
    text, items, comments = statement
    connection, _ = pg
    spans.clear()
    cursor = connection.cursor()
    cursor.execute(text)
    _check_values(cursor.fetchone(), items)
    _assert_hidden([i.canary for i in items] + comments, "postgresql", text, spans)


@pytest.mark.postgres
@_SETTINGS
@given(literal=literals("postgresql"), canary=CANARY, before=NOISE, after=NOISE)
def test_postgresql_errors_never_echo_a_literal(pg, spans, literal, canary, before, after):
    connection, table = pg
    cursor = connection.cursor()
    value = before + canary + after
    attempts = [
        (f"SELECT {literal.sql}::int", None, literal.canary),
        (f"SELECT {literal.sql}::jsonb", None, literal.canary),
        ("SELECT %s::int", (value,), canary),
        ("SELECT %s::jsonb", (value,), canary),
        (f"INSERT INTO {table} VALUES (%s), (%s)", (value, value), canary),
    ]
    spans.clear()
    for sql, params, secret in attempts:
        try:
            cursor.execute(sql, params)
        except psycopg2.Error as error:
            _assert_error_hidden(secret, "postgresql", error)
        else:
            cursor.fetchall() if cursor.description else None
    cursor.execute(f"DELETE FROM {table}")
    for span in spans.finished():
        for field in exported_fields(span):
            assert literal.canary not in field and canary not in field, field


# --- MariaDB ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb():
    engine = sa.create_engine(MARIADB_SQLALCHEMY_URL)
    table = f"otel_db_diff_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (v VARCHAR(200) PRIMARY KEY)")
    yield engine, table
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {table}")
    engine.dispose()


@pytest.mark.mariadb
@_SETTINGS
@given(statement=statements("mysql"))
def test_mariadb_literals_never_leave(mariadb, spans, statement) -> None:
    text, items, comments = statement
    engine, _ = mariadb
    spans.clear()
    with engine.connect() as conn:
        row = conn.exec_driver_sql(text).fetchone()
    _check_values(tuple(row), items)
    _assert_hidden([i.canary for i in items] + comments, "mariadb", text, spans)


@pytest.mark.mariadb
@_SETTINGS
@given(literal=literals("mysql"))
def test_mariadb_errors_never_echo_a_literal(mariadb, spans, literal) -> None:
    _, table = mariadb
    connection = pymysql.connect(**MARIADB)
    try:
        cursor = connection.cursor()
        for sql in (
            f"SELECT * FROM WHERE {literal.sql}",
            f"SELECT {literal.sql} +* 1",
            f"INSERT INTO {table} VALUES ({literal.sql}), ({literal.sql})",
        ):
            try:
                cursor.execute(sql)
            except pymysql.Error as error:
                _assert_error_hidden(literal.canary, "mariadb", error)
        connection.rollback()
    finally:
        connection.close()


# --- SQLite -------------------------------------------------------------------------


@_SETTINGS
@given(statement=statements("sqlite"))
def test_sqlite_literals_never_leave(spans, statement) -> None:
    text, items, comments = statement
    spans.clear()
    connection = sqlite3.connect(":memory:")
    try:
        row = connection.execute(text).fetchone()
    finally:
        connection.close()
    _check_values(row, items)
    _assert_hidden([i.canary for i in items] + comments, "sqlite", text, spans)


@_SETTINGS
@given(literal=literals("sqlite"))
def test_sqlite_errors_never_echo_a_literal(spans, literal) -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE u (v UNIQUE)")
    try:
        for sql in (
            f"SELECT * FROM {literal.sql}",
            f"SELECT {literal.sql} {literal.sql} {literal.sql}",
            f"SELECT {literal.sql} + ",
            f"SELECT json({literal.sql})",
        ):
            try:
                connection.execute(sql).fetchall()
            except sqlite3.Error as error:
                _assert_error_hidden(literal.canary, "sqlite", error)
    finally:
        connection.close()
