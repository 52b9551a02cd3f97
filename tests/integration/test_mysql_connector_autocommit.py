"""Tracing mysql-connector sends the server nothing the application did not: its
``autocommit`` getter runs ``SELECT @@session.autocommit``, and the transaction
tracking used to read it before every statement (one extra round trip each). The
setting is now known from the connect call and from writes through the traced
connection; transactions are still found as before, on a real MariaDB."""

from __future__ import annotations

import mysql.connector
import mysql.connector.pooling
import pytest
from mysql.connector.connection import MySQLConnection

from otel_db import attributes as attr
from tests.conftest import MARIADB

pytestmark = pytest.mark.mariadb


def _connection_classes() -> list[type]:
    """Pure Python and, where its C extension loads (9.0 here; not 26.x, which needs
    OpenSSL 3.2), the one ``connect()`` returns by default."""
    classes: list[type] = [MySQLConnection]
    try:
        from mysql.connector.connection_cext import CMySQLConnection
    except ImportError:
        return classes
    return [*classes, CMySQLConnection]


@pytest.fixture
def autocommit_queries(monkeypatch):
    seen: list[str] = []
    for cls in _connection_classes():

        def info_query(self, query, *args, _original=cls.info_query, **kwargs):
            if "autocommit" in str(query):
                seen.append(query)
            return _original(self, query, *args, **kwargs)

        monkeypatch.setattr(cls, "info_query", info_query)
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


@pytest.mark.parametrize("autocommit", [False, True])
def test_lent_connections_know_autocommit_from_the_pools_configuration(
    spans, autocommit_queries, autocommit
):
    pool = mysql.connector.pooling.MySQLConnectionPool(
        pool_name=f"autocommit_{autocommit}", pool_size=1, autocommit=autocommit, **MARIADB
    )
    for _ in range(3):  # lent, used, handed back (its session reset), lent again
        connection = pool.get_connection()
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        cursor.close()
        if not autocommit:
            connection.commit()
        connection.close()
    assert autocommit_queries == []
    assert len(_transactions(spans)) == (0 if autocommit else 3)


def test_without_the_session_reset_the_driver_is_asked(spans, autocommit_queries):
    pool = mysql.connector.pooling.MySQLConnectionPool(
        pool_name="autocommit_no_reset", pool_size=1, pool_reset_session=False, **MARIADB
    )
    connection = pool.get_connection()
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    cursor.fetchall()
    cursor.close()
    connection.commit()
    connection.close()
    assert autocommit_queries  # the last borrower may have changed it: not assumed
    (transaction,) = _transactions(spans)
    assert transaction.attributes[attr.TRANSACTION_STATEMENT_COUNT] == 1
