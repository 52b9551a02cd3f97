"""Which statements can write: conservative, unknown kinds count as writes."""

from __future__ import annotations

import pytest

from otel_db.transactions.write_classification import can_write


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT id, name FROM users WHERE id = %(id)s",
        "select count(*) from orders",
        "SELECT pg_catalog.version()",
        "SELECT pg_sleep(0.5) AS pg_sleep_1",
        "select current_schema()",
        "show transaction isolation level",
        "(SELECT 1) UNION (SELECT 2)",
        "WITH recent AS (SELECT id FROM orders) SELECT count(*) FROM recent",
        "WITH r (a, b) AS (SELECT 1, 2) SELECT a FROM r",
        "EXPLAIN SELECT * FROM users",
        "SELECT coalesce(max(id), 0) FROM users u JOIN orders o ON (o.user_id = u.id)",
        "VALUES (1), (2)",
        "ROLLBACK",
        "SELECT 1;",
        "/* a comment */ SELECT 1",
    ],
)
def test_reads(statement):
    assert can_write(statement) is False


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO users (name) VALUES ('x')",
        "UPDATE users SET name = 'x'",
        "DELETE FROM users",
        "SELECT * FROM users FOR UPDATE",
        "SELECT * FROM users FOR SHARE",
        "WITH gone AS (DELETE FROM users RETURNING id) SELECT * FROM gone",
        "SELECT nextval('seq')",
        "SELECT my_function(1)",
        'SELECT "MyFunction"(1)',
        "SELECT * INTO new_table FROM users",
        "EXPLAIN ANALYZE DELETE FROM users",
        "CALL do_things()",
        "DO $$ BEGIN END $$",
        "CREATE TABLE t (a int)",
        "LOCK TABLE users",
        "SELECT 1; DELETE FROM users",
        "FROBNICATE everything",
        "",
        None,
        42,
    ],
)
def test_writes_or_unknown(statement):
    assert can_write(statement) is True
