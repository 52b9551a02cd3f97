"""The pytest fixtures tell the truth in every common set-up.

Subprocess pytest runs on a small generated test file against the real PostgreSQL,
under each set-up a project uses: plain ``pytest`` (the fixtures set otel_db up),
``opentelemetry-instrument pytest`` with ``OTEL_TRACES_EXPORTER`` ``none``, ``console``
and ``otlp`` (to a real OTLP/gRPC receiver), ``console,otlp``, and
``otel_db.configure()`` in a conftest. In each: a real N+1 loop fails
``assert_no_n_plus_one`` and shows in ``QueryCapture.n_plus_one``; one ORM query on an
engine with ``pool_pre_ping=True`` passes ``assert_db_queries(1)`` (the pre-ping and
the dialect's start-up statements are the library's, not the test's).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, free_port
from tests.reliability.conftest import REPO_ROOT, instrument_command
from tests.stack.otlp_receiver import OtlpTraceReceiver

pytestmark = pytest.mark.postgres

TABLE = f"otel_db_fixture_{uuid.uuid4().hex[:8]}"

TEST_FILE = """
    import pytest
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from otel_db.testing import QueryCapture

    URL = {url!r}
    TABLE = {table!r}


    @pytest.fixture(scope="module")
    def engine():
        engine = sa.create_engine(URL, pool_pre_ping=True, pool_size=1)
        yield engine
        engine.dispose()


    def _lookups(engine, n):
        with Session(engine) as session:
            for item_id in range(n):
                session.execute(
                    sa.text(f"SELECT name FROM {{TABLE}} WHERE id = :id"), {{"id": item_id}}
                ).all()


    def test_n_plus_one_loop_fails_the_fixture(engine, assert_no_n_plus_one):
        with pytest.raises(pytest.fail.Exception) as failure, assert_no_n_plus_one():
            _lookups(engine, 6)
        assert "N+1 detected" in str(failure.value)


    def test_n_plus_one_shows_in_query_capture(engine):
        with QueryCapture() as captured:
            _lookups(engine, 6)
        assert captured.count == 6, captured.listing()
        assert captured.n_plus_one.get("count") == 6, captured.n_plus_one


    def test_first_connection_start_up_is_not_counted(assert_db_queries):
        fresh = sa.create_engine(URL, pool_pre_ping=True)
        try:
            with assert_db_queries(1), fresh.connect() as conn:
                conn.execute(sa.text("SELECT 1 AS first_connect")).all()
        finally:
            fresh.dispose()


    def test_pre_ping_is_not_counted(engine, assert_db_queries):
        _lookups(engine, 1)  # the pooled connection exists: the next checkout pings
        with assert_db_queries(1), Session(engine) as session:
            session.execute(sa.text(f"SELECT name FROM {{TABLE}} WHERE id = 1")).all()
"""

CONFTEST_CONFIGURE = """
    import otel_db

    otel_db.configure()
"""

SETUPS = {
    "plain pytest": (False, None, False),
    "launcher, exporter none": (True, "none", False),
    "launcher, exporter console": (True, "console", False),
    "launcher, exporter otlp": (True, "otlp", False),
    "launcher, exporters console,otlp": (True, "console,otlp", False),
    "configure() in conftest, exporter none": (False, "none", True),
    "configure() in conftest, exporter otlp": (False, "otlp", True),
}


@pytest.fixture(scope="module")
def table():
    import psycopg2

    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, name text)")
        cursor.execute(f"INSERT INTO {TABLE} SELECT g, 'n' || g FROM generate_series(0, 9) g")
    yield TABLE
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
    connection.close()


@pytest.mark.parametrize("setup", list(SETUPS))
def test_fixtures_count_and_detect_in_every_set_up(tmp_path: Path, table: str, setup: str):
    launcher, exporter, configure = SETUPS[setup]
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
    (tmp_path / "test_app.py").write_text(textwrap.dedent(TEST_FILE.format(url=url, table=table)))
    if configure:
        (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST_CONFIGURE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_SERVICE_NAME="otel-db-fixtures",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        PYTHONPATH=str(REPO_ROOT),
    )
    receiver = None
    if exporter is not None:
        env["OTEL_TRACES_EXPORTER"] = exporter
    if exporter is not None and "otlp" in exporter:
        receiver = OtlpTraceReceiver(port=free_port()).start()
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{receiver.port}"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    if launcher:
        command = [instrument_command(), *command]
    try:
        done = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    finally:
        if receiver is not None:
            receiver.stop()
    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0, output
    assert "4 passed" in done.stdout, output
