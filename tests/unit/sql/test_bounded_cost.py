"""Issue 16: analysis costs a bounded amount of work per statement, caches are bounded
in bytes, and the lexer survives arbitrary text (fuzzed) in linear time.

No test asserts a wall time: work is counted in tokens, and linearity is checked as
a generous ratio between the cost of n and 8n characters of the same input.
"""

from __future__ import annotations

import random
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_db.sql import analysis
from otel_db.sql.analysis import LARGE_CACHE_BYTES, analyze_statement
from otel_db.sql.dialects import DIALECTS, POSTGRESQL
from otel_db.sql.fingerprint import fingerprint
from otel_db.sql.sanitize import MAX_SANITIZED_CHARS, normalize_tokens, render, sanitize
from otel_db.sql.tokenizer import (
    MAX_LEX_CHARS,
    MAX_TOKENS,
    MAX_TOKENS_ALL_READINGS,
    tokenize,
)

SYSTEMS = ("postgresql", "mysql", "sqlite", "microsoft.sql_server", "oracle.db", None)


def _in_list(count: int, item) -> str:
    return "SELECT * FROM t WHERE id IN (" + ", ".join(item(i) for i in range(count))


@pytest.mark.parametrize(
    "item",
    [
        lambda i: str(random.randrange(10**9)),
        lambda i: f"'{random.randrange(10**9)}'",
        lambda i: "%s",
        lambda i: f"%(id_1_{i})s",
        lambda i: f"${i + 1}",
        lambda i: "?",
    ],
    ids=["numbers", "strings", "%s", "%(name)s", "$n", "?"],
)
def test_10k_and_15k_in_lists_share_a_fingerprint(item) -> None:
    ten = _in_list(10_000, item) + ") ORDER BY id"
    fifteen = _in_list(15_000, item) + ") ORDER BY id"
    assert len(fifteen) > 64 * 1024 or item(0) in ("%s", "?")
    first, second = analyze_statement(ten, "postgresql"), analyze_statement(fifteen, "postgresql")
    assert first.fingerprint == second.fingerprint
    assert first.sanitized_text.endswith(") ORDER BY id")
    assert first.summary == "SELECT t"


def test_long_literal_lists_are_one_token() -> None:
    tokens = tokenize(_in_list(50_000, str) + ")", POSTGRESQL)
    assert len(tokens) < 20
    assert render(normalize_tokens(tokens)) == "SELECT * FROM t WHERE id IN (?)"
    rows = "INSERT INTO t VALUES " + ", ".join(f"({i}, 'v{i}', NULL)" for i in range(10_000))
    assert len(tokenize(rows, POSTGRESQL)) < 20
    assert sanitize(rows, "postgresql") == "INSERT INTO t VALUES (?, ?, NULL)"


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize(
    "unit", ["(", "a ", "IN (", "'", "/*", "-- x\n", '"', "$$", "\\", "x'", "#", "[", ", 1"]
)
def test_work_per_statement_is_capped(system, unit: str) -> None:
    text = unit * (2 * MAX_LEX_CHARS // len(unit))
    tokens = tokenize(text, POSTGRESQL if system == "postgresql" else DIALECTS[-1])
    assert len(tokens) <= MAX_TOKENS + 1
    assert isinstance(analyze_statement(text, system).sanitized_text, str)


def test_over_the_cap_everything_is_hidden_and_the_fingerprint_follows_the_shape() -> None:
    head = "SELECT " + ", ".join(f"c{i}" for i in range(MAX_TOKENS)) + " FROM t WHERE a = "
    first = analyze_statement(head + "'hunter2'", "postgresql")
    second = analyze_statement(head + "'alice@example.com' AND b = 7", "postgresql")
    assert "hunter2" not in first.sanitized_text
    assert "alice" not in second.sanitized_text
    assert first.sanitized_text.endswith("?")
    assert first.fingerprint == second.fingerprint
    assert fingerprint(head + "'x'", "postgresql") == first.fingerprint
    past_the_read_limit = "SELECT 1 -- " + "x" * MAX_LEX_CHARS + "\n, 'hunter2'"
    assert "hunter2" not in sanitize(past_the_read_limit, "postgresql")


def test_readings_share_one_token_budget() -> None:
    # Every trigger at once: the unknown dialect lexes it under many readings.
    text = "SELECT \"a\" # x\n, $$ 'q' $$ /* /* */ */ -- y\n, 'C:\\' " * 2000
    tokens = tokenize(text)
    assert len(tokens) <= MAX_TOKENS_ALL_READINGS
    assert "'q'" not in sanitize(text)


def test_large_statement_cache_is_bounded_in_bytes() -> None:
    analysis._large_cache.clear()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(64):
            statement = (
                f"SELECT /* {n} */ * FROM t WHERE id IN ("
                + "1, " * 150_000
                + "2) -- "
                + "x" * 600_000
            )
            assert len(statement) > 1_000_000
            analyze_statement(statement, "postgresql")
            del statement
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(analysis._large_cache) == 64
    assert analysis._large_cache.chars <= LARGE_CACHE_BYTES
    assert retained < 4 * 1024 * 1024  # 64 MB of statements, a few KB of shapes


def test_sanitized_text_is_bounded() -> None:
    text = "SELECT ARRAY[" + "1, " * 170_000
    assert len(sanitize(text, "postgresql")) <= MAX_SANITIZED_CHARS
    assert len(analyze_statement(text, "postgresql").sanitized_text) <= MAX_SANITIZED_CHARS


def test_large_statement_cache_evicts_by_size() -> None:
    cache = analysis._LargeStatementCache(max_entries=100, max_chars=10_000)
    shape = analysis.StatementShape("x" * 3000, "SELECT", None, None, "0" * 16)
    for key in range(10):
        cache.put((key, 1, "pg"), shape)
    assert cache.chars <= 10_000
    assert len(cache) == 3
    assert cache.get((9, 1, "pg")) is shape
    assert cache.get((0, 1, "pg")) is None


# --- fuzzing ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300), dialect=st.sampled_from(DIALECTS))
def test_lexer_never_raises_on_arbitrary_text(text: str, dialect) -> None:
    tokens = tokenize(text, dialect)
    assert len(tokens) <= len(text) + 1
    assert isinstance(render(normalize_tokens(tokens)), str)


_SQLISH = st.text(
    alphabet=st.sampled_from(list("'\"`$\\/*-#\n\r[]();,=?:%qQeEnNxXbB&!M 0123456789aZ_.")),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(text=_SQLISH, dialect=st.sampled_from(DIALECTS))
def test_lexer_never_raises_on_sql_punctuation(text: str, dialect) -> None:
    assert isinstance(render(normalize_tokens(tokenize(text, dialect))), str)


def _cost(text: str, dialect) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        render(normalize_tokens(tokenize(text, dialect)))
        best = min(best, time.process_time() - start)
    return best


@settings(max_examples=12, deadline=None)
@given(unit=_SQLISH.filter(lambda s: len(s) >= 2), dialect=st.sampled_from(DIALECTS))
def test_lexing_is_linear_in_input_length(unit: str, dialect) -> None:
    # Up to the caps, 8x the input must not cost more than 8x the work (with a wide
    # margin for timer noise on a shared machine, and a floor for tiny times).
    small = (unit * (4096 // len(unit) + 1))[:4096]
    large = (unit * (32768 // len(unit) + 1))[:32768]
    assert _cost(large, dialect) <= 8 * 6 * _cost(small, dialect) + 0.02
