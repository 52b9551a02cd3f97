"""db.operation.name, db.query.summary and db.collection.name."""

from __future__ import annotations

import pytest

from otel_db.sql.summary import MAX_SUMMARY_CHARS, operation_and_targets
from otel_db.sql.tokenizer import tokenize


def shape(statement: str):
    return operation_and_targets(tokenize(statement))


@pytest.mark.parametrize(
    ("statement", "operation", "summary", "collection"),
    [
        ("SELECT * FROM users WHERE id = 1", "SELECT", "SELECT users", "users"),
        ("select * from users", "SELECT", "SELECT users", "users"),
        ("SELECT * FROM wuser_table WHERE username = ?", "SELECT", "SELECT wuser_table",
         "wuser_table"),
        ("SELECT * FROM songs, artists WHERE songs.artist_id = artists.id", "SELECT",
         "SELECT songs artists", None),
        ("SELECT u.id FROM users u JOIN orders o ON o.uid = u.id", "SELECT",
         "SELECT users orders", None),
        ("SELECT * FROM users AS u LEFT OUTER JOIN public.orders AS o USING (id)", "SELECT",
         "SELECT users public.orders", None),
        ("SELECT * FROM users a JOIN users b ON a.boss = b.id", "SELECT", "SELECT users",
         "users"),
        ("INSERT INTO shipping_details (order_id, address) SELECT order_id, address "
         "FROM orders WHERE order_id = ?", "INSERT", "INSERT shipping_details SELECT orders",
         None),
        ("SELECT order_date FROM (SELECT * FROM orders o JOIN customers c "
         "ON o.customer_id = c.customer_id)", "SELECT", "SELECT SELECT orders customers", None),
        ('SELECT * FROM "song list"', "SELECT", 'SELECT "song list"', '"song list"'),
        ("SELECT * FROM t WHERE id IN (SELECT tid FROM u)", "SELECT", "SELECT t SELECT u",
         None),
        ("INSERT INTO orders (a, b) VALUES (1, 2)", "INSERT", "INSERT orders", "orders"),
        ("INSERT IGNORE INTO orders VALUES (1)", "INSERT", "INSERT orders", "orders"),
        ("INSERT OR REPLACE INTO kv VALUES (?, ?)", "INSERT", "INSERT kv", "kv"),
        ("REPLACE INTO kv VALUES (1)", "REPLACE", "REPLACE kv", "kv"),
        ("INSERT INTO t VALUES (%s) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v", "INSERT",
         "INSERT t", "t"),
        ("INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE v = 2", "INSERT", "INSERT t", "t"),
        ("UPDATE users SET name = 'x' WHERE id = 1", "UPDATE", "UPDATE users", "users"),
        ("UPDATE t SET a = s.a FROM s WHERE t.id = s.id", "UPDATE", "UPDATE t s", None),
        ("DELETE FROM sessions WHERE expires < now()", "DELETE", "DELETE sessions",
         "sessions"),
        ("SELECT * FROM users FOR UPDATE", "SELECT", "SELECT users", "users"),
        ("SELECT EXTRACT(YEAR FROM ts) FROM events", "SELECT", "SELECT events", "events"),
        ("SELECT * FROM generate_series(1, 3)", "SELECT", "SELECT", None),
        ("WITH recent AS (SELECT * FROM orders) SELECT * FROM recent JOIN users ON true",
         "SELECT", "SELECT orders SELECT users", None),
        ("WITH d AS (DELETE FROM q RETURNING *) INSERT INTO archive SELECT * FROM d", "INSERT",
         "DELETE q INSERT archive SELECT", None),
        ("CREATE TABLE IF NOT EXISTS public.users (id int)", "CREATE TABLE",
         "CREATE TABLE public.users", "public.users"),
        ("DROP TABLE IF EXISTS t_1", "DROP TABLE", "DROP TABLE t_1", "t_1"),
        ("CREATE UNIQUE INDEX ix ON users (email)", "CREATE INDEX", "CREATE INDEX users",
         "users"),
        ("TRUNCATE TABLE logs", "TRUNCATE", "TRUNCATE logs", "logs"),
        ("BEGIN", "BEGIN", "BEGIN", None),
        ("START TRANSACTION", "START TRANSACTION", "START TRANSACTION", None),
        ("commit", "COMMIT", "COMMIT", None),
        ("SAVEPOINT sp_1", "SAVEPOINT", "SAVEPOINT", None),
        ("SET search_path = public", "SET", "SET", None),
        ("SELECT 1", "SELECT", "SELECT", None),
        ("EXPLAIN SELECT * FROM t", "EXPLAIN", "EXPLAIN SELECT t", "t"),
        ("/* app */ SELECT * FROM t -- x", "SELECT", "SELECT t", "t"),
        ("SELECT * FROM a; DELETE FROM b", "SELECT", "SELECT a DELETE b", None),
        ("", None, None, None),
        ("hello world", None, None, None),
        ("(((", None, None, None),
    ],
)  # fmt: skip
def test_operation_summary_collection(statement, operation, summary, collection) -> None:
    result = shape(statement)
    assert (result.operation, result.summary, result.collection) == (
        operation,
        summary,
        collection,
    )


def test_summary_is_cut_at_a_token_boundary() -> None:
    tables = [f"table_number_{i}" for i in range(60)]
    statement = "SELECT * FROM " + ", ".join(tables)
    summary = shape(statement).summary
    assert summary is not None
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert summary.startswith("SELECT table_number_0 table_number_1")
    assert summary.split(" ")[-1] in tables


def test_deep_nesting_completes() -> None:
    statement = "SELECT * FROM " + "(SELECT * FROM " * 5000 + "t" + ")" * 5000
    result = shape(statement)
    assert result.operation == "SELECT"
    assert result.summary is not None
    assert len(result.summary) <= MAX_SUMMARY_CHARS
