"""Tracing mysql-connector sends the server nothing the application did not: its
``autocommit`` getter runs ``SELECT @@session.autocommit``, and the transaction
tracking used to read it before every statement (one extra round trip each). The
setting is now known from the connect call and from writes through the traced
connection; transactions are still found as before, on a real MariaDB."""

from __future__ import annotations

import mysql.connector
import pytest
from mysql.connector.connection import MySQLConnection

from otel_db import attributes as attr
from tests.conftest import MARIADB

pytestmark = pytest.mark.mariadb


@pytest.fixture
def autocommit_queries(monkeypatch):
    seen: list[str] = []
    original = MySQLConnection.info_query

    def info_query(self, query, *args, **kwargs):
        if "autocommit" in str(query):
            seen.append(query)
        return original(self, query, *args, **kwargs)

    monkeypatch.setattr(MySQLConnection, "info_query", info_query)
    return seen


def _transactions(spans):
    return [s for s in spans.finished() if attr.TRANSACTION_STATEMENT_COUNT in s.attributes]


def test_no_autocommit_query_per_statement(spans, autocommit_queries):
    connection = mysql.connector.connect(**MARIADB)  # autocommit off: its default
    try:
        cursor = connection.cursor()
        for i in range(3):
            cursor.execute("SELECT %s", (i,))
            cursor.fetchall()
        connection.commit()
        connection.autocommit = True
        for i in range(3):
            cursor.execute("SELECT %s", (i,))
            cursor.fetchall()
        cursor.close()
    finally:
        connection.close()
    assert autocommit_queries == []
    (transaction,) = _transactions(spans)  # the three statements before commit()
    assert transaction.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 3


def test_autocommit_from_the_connect_call(spans, autocommit_queries):
    connection = mysql.connector.connect(**MARIADB, autocommit=True)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        cursor.close()
    finally:
        connection.close()
    assert autocommit_queries == []
    assert _transactions(spans) == []
