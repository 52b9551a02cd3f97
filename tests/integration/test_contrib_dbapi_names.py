"""One db.operation.name per operation and one db.system.name per server, from contrib's
DB-API tracer and otel_db's own."""

from __future__ import annotations

import pytest

from tests.integration.launcher import run_inline
from tests.support.console_output import console_spans, json_documents

APP = """
    import sqlite3

    import sqlalchemy as sa

    raw = sqlite3.connect(":memory:")
    raw.cursor().execute("select 1").fetchall()           # contrib's DB-API tracer
    raw.cursor().execute("SELECT 2").fetchall()
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:                        # otel_db's SQLAlchemy tracer
        conn.execute(sa.text("select 3")).all()
        conn.execute(sa.select(sa.literal(4))).all()
"""


def _duration_operation_names(stdout: str) -> list[str | None]:
    names = []
    for document in json_documents(stdout):
        for resource in document.get("resource_metrics", ()):
            for scope_metrics in resource["scope_metrics"]:
                for metric in scope_metrics["metrics"]:
                    if metric["name"] != "db.client.operation.duration":
                        continue
                    for point in metric["data"]["data_points"]:
                        names.append(point["attributes"].get("db.operation.name"))
    return names


def test_one_operation_name_for_select_in_spans_and_the_duration_metric(tmp_path):
    result = run_inline(
        tmp_path,
        APP,
        env={"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    names = _duration_operation_names(result.stdout)
    assert "SELECT" in names and set(names) <= {"SELECT", "PRAGMA"}, names
    spans = [
        s for s in console_spans(result.stdout) if s["attributes"].get("db.system.name") == "sqlite"
    ]
    operations = {
        s["attributes"].get("db.operation.name") for s in spans if "SAVEPOINT" not in s["name"]
    }
    assert operations - {None, "PRAGMA"} == {"SELECT"}, operations


MARIADB_APP = """
    import pymysql
    import sqlalchemy as sa

    from tests.conftest import MARIADB, MARIADB_SQLALCHEMY_URL

    engine = sa.create_engine(MARIADB_SQLALCHEMY_URL)  # its first connect runs the set-up
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1 AS system_name_probe")).all()
    raw = pymysql.connect(**MARIADB)
    with raw.cursor() as cursor:
        cursor.execute("SELECT 2 AS system_name_probe")
        cursor.fetchall()
    raw.close()
"""


@pytest.mark.mariadb
def test_a_mariadb_connection_is_mariadb_from_its_first_statement(tmp_path):
    result = run_inline(
        tmp_path,
        MARIADB_APP,
        env={"OTEL_METRICS_EXPORTER": "console", "OTEL_TRACES_EXPORTER": "console"},
    )
    assert result.returncode == 0, result.stderr
    spans = [s for s in console_spans(result.stdout) if "db.system.name" in s["attributes"]]
    # the dialect's set-up statements (run on the driver), SQLAlchemy's, raw pymysql's
    assert len(spans) >= 4
    assert {s["attributes"]["db.system.name"] for s in spans} == {"mariadb"}
    systems = set()
    for document in json_documents(result.stdout):
        for resource in document.get("resource_metrics", ()):
            for scope_metrics in resource["scope_metrics"]:
                for metric in scope_metrics["metrics"]:
                    if metric["name"] == "db.client.operation.duration":
                        systems |= {
                            p["attributes"].get("db.system.name")
                            for p in metric["data"]["data_points"]
                        }
    assert systems == {"mariadb"}


@pytest.mark.mariadb
def test_mariadb_is_recognised_without_a_deprecated_driver_call():
    """mysql-connector deprecates ``get_server_info()``: otel_db reads the server's
    version from plain attributes, so no warning of its making reaches the app."""
    import warnings

    import mysql.connector
    import pymysql

    from otel_db.instrumentation.contrib_dbapi import is_mariadb_server
    from tests.conftest import MARIADB

    params = {key: MARIADB[key] for key in ("host", "port", "user", "password", "database")}
    for connect in (mysql.connector.connect, pymysql.connect):
        connection = connect(**params)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                assert is_mariadb_server(connection) is True, connect
        finally:
            connection.close()
