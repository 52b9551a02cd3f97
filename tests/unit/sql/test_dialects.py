"""Issue 16: each dialect lexed by its own rules; ambiguity hides the union.

Every example of the issue is here as a regression test. What the real servers make
of such statements is proven in tests/integration/test_sanitizer_differential.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_db.sql.analysis import analyze_statement
from otel_db.sql.dialects import (
    DIALECTS,
    MYSQL,
    POSTGRESQL,
    SQLITE,
    UNKNOWN,
    dialect_for_system,
    readings_for,
)
from otel_db.sql.errors import scrub_error_message
from otel_db.sql.sanitize import normalize_tokens, render, sanitize
from otel_db.sql.tokenizer import tokenize

SECRETS = ("hunter2", "alice@example.com")
SYSTEMS = ("postgresql", "mysql", "mariadb", "sqlite", "microsoft.sql_server", "oracle.db", None)


def _hidden(text: str) -> bool:
    return not any(secret in text for secret in SECRETS)


# --- the examples -----------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
def test_string_ending_in_a_backslash_hides_what_follows(system) -> None:
    statement = "INSERT INTO t VALUES ('C:\\', 'hunter2', 'alice@example.com')"
    result = sanitize(statement, system)
    assert _hidden(result), result
    assert _hidden(analyze_statement(statement, system).sanitized_text)


def test_string_ending_in_a_backslash_keeps_its_shape_where_unambiguous() -> None:
    statement = "INSERT INTO t VALUES ('C:\\', 'hunter2', 'alice@example.com')"
    # SQLite has no backslash escapes at all: the standard reading is the only one.
    assert sanitize(statement, "sqlite") == "INSERT INTO t VALUES (?, ?, ?)"


@pytest.mark.parametrize("system", ["postgresql", "microsoft.sql_server", None])
def test_nested_block_comments_hide_what_follows_the_inner_end(system) -> None:
    statement = "SELECT 1 /* outer /* inner */ 'hunter2' alice@example.com */ FROM t"
    result = sanitize(statement, system)
    assert _hidden(result), result


def test_nested_block_comments_on_postgresql_are_removed_whole() -> None:
    statement = "SELECT a /* outer /* inner */ hunter2 */ FROM t"
    assert sanitize(statement, "postgresql") == "SELECT a FROM t"


@pytest.mark.parametrize("system", ["mysql", "mariadb", "sqlite", None])
def test_double_quoted_values_are_hidden_where_they_may_be_strings(system) -> None:
    statement = 'SELECT * FROM users WHERE pw = "hunter2" OR f("alice@example.com")'
    assert _hidden(sanitize(statement, system))


def test_double_quotes_are_names_on_postgresql() -> None:
    statement = 'SELECT "Weird Col" FROM "s"."t" WHERE "c" = 1'
    assert sanitize(statement, "postgresql") == 'SELECT "Weird Col" FROM "s"."t" WHERE "c" = ?'


def test_double_quoted_names_stay_where_only_a_name_fits() -> None:
    statement = 'SELECT * FROM "users" JOIN "s"."t" ON "t".a = 1'
    assert sanitize(statement, "sqlite") == statement.replace("1", "?")


def test_error_context_json_line_is_scrubbed() -> None:
    # PostgreSQL's error for SELECT %s::jsonb with a bound parameter.
    message = (
        "invalid input syntax for type json\n"
        'DETAIL:  Token "hunter2" is invalid.\n'
        'CONTEXT:  JSON data, line 1: {"a": hunter2...\n'
    )
    scrubbed = scrub_error_message(message, "postgresql")
    assert _hidden(scrubbed), scrubbed
    assert scrubbed.startswith("invalid input syntax for type json\nDETAIL:  Token ?")


def test_error_context_keeps_its_words() -> None:
    message = "invalid input syntax for type json\nCONTEXT:  JSON data, line 1: {hunter2...\n"
    assert scrub_error_message(message) == (
        "invalid input syntax for type json\nCONTEXT:  JSON data, line 1: ?"
    )


def test_error_detail_value_with_a_newline_is_scrubbed() -> None:
    # Seen live with a bound parameter: no literal in the SQL at all.
    message = (
        'duplicate key value violates unique constraint "t_pkey"\n'
        "DETAIL:  Key (d)=(line1 hunter2\nline2 alice@example.com)x) already exists.\n"
    )
    assert scrub_error_message(message, "postgresql") == (
        'duplicate key value violates unique constraint "t_pkey"\n'
        "DETAIL:  Key (d)=(?) already exists."
    )


@pytest.mark.parametrize(
    "message",
    [
        # A value that fakes a part header: its tail must not be read as a statement.
        'duplicate key value violates unique constraint "k"\n'
        "DETAIL:  Key (d)=(x)\nLINE 1: hunter2) already exists.\n",
        'invalid input syntax for type integer: "a"\nLINE 1: hunter2"\nLINE 1: SELECT 1\n',
        'value "x\nCONTEXT:  y\nhunter2"',
        # A MySQL value holding quotes, and one that never ends.
        "(1062, \"Duplicate entry 'a'hunter2' for key 'users.email'\")",
        '(1064, "You have an error in your SQL syntax; check the manual that corresponds '
        "to your MariaDB server version for the right syntax to use near ''hunter2' at "
        "line 1' at line 1\")",
        "Duplicate entry 'hunter2",
        # SQLite, multi-line.
        'unrecognized token: "\'hunter2\nalice@example.com"',
        # SQLAlchemy's echo with a statement that fakes the tail.
        "(psycopg2.errors.UniqueViolation) duplicate key\n"
        "DETAIL:  Key (e)=(x\n[SQL: hunter2) already exists.\n\n"
        "[SQL: INSERT INTO u VALUES (%(e)s)]\n[parameters: {'e': 'alice@example.com'}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)",
    ],
)
def test_hostile_values_in_error_messages(message: str) -> None:
    for system in SYSTEMS:
        scrubbed = scrub_error_message(message, system)
        assert _hidden(scrubbed), (system, scrubbed)


# --- per-dialect rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("system", "statement", "expected"),
    [
        # PostgreSQL: standard strings, E'' escapes, dollar quotes, # is an operator
        ("postgresql", "SELECT 'a''b', E'it\\'s', $t$ 'x' $t$, $$y$$", "SELECT ?, ?, ?, ?"),
        ("postgresql", "SELECT U&'d\\0061t', B'0101', X'ff', N'n'", "SELECT ?, ?, ?, ?"),
        ("postgresql", "SELECT j #> '{a}', j #- '{b}' FROM t", "SELECT j #> ?, j #- ? FROM t"),
        ("postgresql", "SELECT a -- c\rFROM t", "SELECT a FROM t"),
        ("postgresql", "SELECT arr[1] FROM t", "SELECT arr[?] FROM t"),
        # MySQL/MariaDB: backslash escapes, # comments, "--" needs a space, /*! */ is code
        ("mysql", "SELECT 'its' # c\nFROM t", "SELECT ? FROM t"),
        ("mysql", "SELECT 'it\\'s' FROM t", "SELECT ?"),  # NO_BACKSLASH_ESCAPES: both
        ("mysql", "SELECT 1--1", "SELECT ?-?"),
        ("mysql", "SELECT 1 -- c\nFROM t", "SELECT ? FROM t"),
        ("mysql", "SELECT `a``b`, _utf8mb4'x', X'ff', 0x1F, b'01'",
         "SELECT `a``b`, _utf8mb4?, ?, ?, ?"),
        ("mariadb", "SELECT /*!50000 'hunter2' */ 1", "SELECT ? ?"),
        # SQLite: no backslash escapes, [names], X'' blobs, $name parameters
        ("sqlite", "SELECT [a b], X'ff', 'C:\\' FROM t WHERE a = $v",
         "SELECT [a b], ?, ? FROM t WHERE a = $v"),
        # SQL Server / Oracle style
        ("microsoft.sql_server", "SELECT [x], N'y' /* a /* b */ c */ FROM t",
         "SELECT [x], ? FROM t"),
        ("oracle.db", 'SELECT "x" FROM "t" /* a /* b */ c', 'SELECT "x" FROM "t" c'),
        ("oracle.db", "SELECT q'[it's]', nq'{x}' FROM dual", "SELECT ?, ? FROM dual"),
    ],
)  # fmt: skip
def test_dialect_rules(system, statement: str, expected: str) -> None:
    assert sanitize(statement, system) == expected


def test_system_names_pick_dialects() -> None:
    assert dialect_for_system("postgresql") is POSTGRESQL
    assert dialect_for_system("mariadb") is MYSQL
    assert dialect_for_system("sqlite") is SQLITE
    assert dialect_for_system("db2") is UNKNOWN
    assert dialect_for_system(None) is UNKNOWN
    assert dialect_for_system(["postgresql"]) is UNKNOWN


def test_plain_statements_are_lexed_once() -> None:
    plain = "SELECT a, b FROM t WHERE c = 'x' AND d IN (1, 2) -- note"
    for dialect in DIALECTS:
        assert len(readings_for(dialect, plain)) == 1, dialect.name


# --- the union rule ---------------------------------------------------------------------


def _shown_positions(text: str, dialect) -> str:
    return render(normalize_tokens(tokenize(text, dialect)))


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT 'C:\\', 'hunter2', x FROM t",
        "SELECT 'a\\' hunter2 '\\' FROM t",
        "SELECT 1 /* /* */ hunter2 */ x",
        "SELECT 1 # hunter2\n, 'x'",
        "SELECT $a$ 'x $a$ ' hunter2 '",
        "SELECT 1--'\n hunter2 '",
        'SELECT "a\\" hunter2 "',
        "SELECT q'[ ' hunter2 ' ]' FROM dual",
        "SELECT /*! 'x */ hunter2 ' */ 1",
    ],
)
def test_ambiguity_hides_the_union_of_every_reading(statement: str) -> None:
    # Under each reading alone some of these show the secret as code; the unknown
    # dialect combines every reading and shows only what all of them call code.
    shown_alone = [
        dialect.name
        for dialect in DIALECTS
        for reading in dialect.readings
        if "hunter2" in _shown_positions(statement, dialect._replace(readings=(reading,)))
    ]
    assert shown_alone, "the example should be ambiguous"
    assert "hunter2" not in sanitize(statement)


def test_unknown_dialect_hides_backslash_string_under_both_readings() -> None:
    statement = "INSERT INTO t VALUES ('C:\\', 'hunter2', 'alice@example.com')"
    standard = POSTGRESQL._replace(readings=POSTGRESQL.readings[:1])
    backslash = POSTGRESQL._replace(readings=POSTGRESQL.readings[1:])
    assert "hunter2" in _shown_positions(statement, backslash)  # alone it would leak
    assert _shown_positions(statement, standard) == "INSERT INTO t VALUES (?, ?, ?)"
    assert _hidden(sanitize(statement))
    assert _hidden(sanitize(statement, "postgresql"))


# --- error messages, by structure -----------------------------------------------------

_HOSTILE_NOISE = st.lists(
    st.sampled_from(
        ["'", '"', "(", ")", ")=(", "\n", "\r\n", " ", "x", "\\", "`", ":",
         "\nLINE 1: ", "\nCONTEXT:  ", "\nDETAIL:  ", "\nHINT:  ", "\n[SQL: ",
         "\n[parameters: ", " for key '", " at line 1", "]"]
    ),
    max_size=4,
).map("".join)  # fmt: skip
_MESSAGES = [
    'duplicate key value violates unique constraint "t_pkey"\n'
    "DETAIL:  Key (c)=({v}) already exists.\n",
    'insert or update on table "c" violates foreign key constraint "f"\n'
    'DETAIL:  Key (p)=({v}) is not present in table "p".',
    'new row for relation "t" violates check constraint "k"\n'
    "DETAIL:  Failing row contains (1, {v}, null).",
    'invalid input syntax for type integer: "{v}"\nLINE 1: SELECT $1::int\n'
    "                      ^\n",
    'invalid input syntax for type json\nDETAIL:  Token "{v}" is invalid.\n'
    "CONTEXT:  JSON data, line 1: {v}...\n",
    "(1062, \"Duplicate entry '{v}' for key 'users.email'\")",
    "(1366, \"Incorrect integer value: '{v}' for column `test`.`t`.`n` at row 1\")",
    '(1064, "You have an error in your SQL syntax; check the manual that corresponds '
    "to your MariaDB server version for the right syntax to use near '{v}' at line 1\")",
    'near "{v}": syntax error',
    "no such column: {v}",
    'unrecognized token: "{v}"',
    "(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint "
    '"u"\nDETAIL:  Key (e)=({v}) already exists.\n\n[SQL: INSERT INTO u VALUES (%(e)s)]\n'
    "[parameters: {{'e': '{v}'}}]\n(Background on this error at: https://sqlalche.me/e/20/gkpj)",
]


@settings(max_examples=200)
@given(
    template=st.sampled_from(_MESSAGES),
    before=_HOSTILE_NOISE,
    after=_HOSTILE_NOISE,
    system=st.sampled_from(SYSTEMS),
)
def test_no_value_survives_scrubbing(template: str, before: str, after: str, system) -> None:
    # Whatever a value holds (quotes, parentheses, newlines, text that looks like a
    # part header or SQLAlchemy's tail), none of it comes out.
    value = before + "hunter2" + after
    scrubbed = scrub_error_message(template.format(v=value), system)
    assert "hunter2" not in scrubbed, scrubbed


@given(text=st.text(max_size=400), system=st.sampled_from(SYSTEMS))
def test_scrubbing_never_raises(text: str, system) -> None:
    assert len(scrub_error_message(text, system)) <= 1000
