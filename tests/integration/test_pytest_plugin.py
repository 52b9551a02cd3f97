"""The pytest fixtures, on real SQLite through SQLAlchemy, with the real pipeline."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

pytest_plugins = ["pytester"]

_SCHEMA = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"


@pytest.fixture
def engine(spans, tmp_path):  # `spans` installs the session's tracer provider first
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'items.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(sa.text(_SCHEMA))
        conn.execute(sa.text("INSERT INTO items (name) VALUES ('a'), ('b'), ('c')"))
    yield engine
    engine.dispose()


def _lookups(engine, n: int) -> None:
    with engine.connect() as conn:
        for item_id in range(1, n + 1):
            conn.execute(sa.text("SELECT name FROM items WHERE id = :id"), {"id": item_id})


def test_exact_count_passes(engine, assert_db_queries):
    with assert_db_queries(3) as captured:
        _lookups(engine, 3)
    assert captured.statements == ["SELECT name FROM items WHERE id = ?"] * 3


def test_wrong_count_fails_and_lists_the_statements(engine, assert_db_queries):
    with pytest.raises(pytest.fail.Exception) as failure, assert_db_queries(2, info="detail page"):
        _lookups(engine, 3)
    message = str(failure.value)
    assert "expected 2 database statements, 3 ran (detail page)" in message
    assert "3. SELECT name FROM items WHERE id = ?" in message


def test_upper_bound(engine, assert_db_queries):
    with assert_db_queries(5, exact=False):
        _lookups(engine, 3)
    with pytest.raises(pytest.fail.Exception), assert_db_queries(2, exact=False):
        _lookups(engine, 3)


def test_n_plus_one_is_reported(engine, assert_no_n_plus_one):
    with assert_no_n_plus_one():
        _lookups(engine, 2)  # under the default threshold of 5
    with pytest.raises(pytest.fail.Exception) as failure, assert_no_n_plus_one():
        _lookups(engine, 6)
    assert "N+1 detected" in str(failure.value) and "6 times" in str(failure.value)


def test_statements_of_other_threads_are_not_counted(engine, assert_db_queries):
    import threading

    worker = threading.Thread(target=_lookups, args=(engine, 4))
    with assert_db_queries(1):
        worker.start()
        worker.join()
        _lookups(engine, 1)


def test_plugin_works_in_a_fresh_test_session_without_any_set_up(pytester):
    pytester.makepyfile(
        test_app="""
        import sqlite3

        def test_counts(assert_db_queries):
            connection = sqlite3.connect(":memory:")
            with assert_db_queries(2):
                connection.execute("CREATE TABLE t (x)")
                connection.execute("INSERT INTO t VALUES (1)")

        def test_too_many(assert_db_queries):
            connection = sqlite3.connect(":memory:")
            with assert_db_queries(1):
                connection.execute("SELECT 1")
                connection.execute("SELECT 2")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*expected 1 database statements, 2 ran*", "*2. SELECT ?*"])
