"""Database faults on the real PostgreSQL: the app gets the driver's/SQLAlchemy's normal
errors, the spans say what happened, and nothing stays open or held afterwards.

The shared server is never restarted (other suites run against it): a restart is
simulated by terminating every backend of a dedicated ``application_name``, repeatedly,
while a bounded worker loop runs transactions through a ``pool_pre_ping`` pool. To the
client that is what a restart looks like (57P01 "terminating connection due to
administrator command" mid-statement, then dead pooled connections).
Killed-connection outcomes (``unknown``/``rolled_back``) are covered in
tests/integration/test_transaction_*.py; these tests add the error facts, the pool
counts, open spans and the holding stage.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg2
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from otel_db import attributes as attr
from otel_db.pools.snapshot import POOL_EXHAUSTED_EVENT
from tests.conftest import POSTGRES_URL

from .conftest import held_spans

pytestmark = pytest.mark.postgres

SA_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)
APP_NAME = "otel_db_fault_test"


def _text(span) -> str:
    return span.attributes.get(attr.DB_QUERY_TEXT) or ""


def _terminate(where: str, *args: object) -> int:
    """pg_terminate_backend for the backends matching ``where``; how many it hit."""
    killer = psycopg2.connect(POSTGRES_URL, application_name="otel_db_fault_killer")
    try:
        killer.autocommit = True
        with killer.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE {where} AND pid <> pg_backend_pid()",
                args,
            )
            return cursor.fetchone()[0]
    finally:
        killer.close()


def _assert_failed_on_connection(span) -> None:
    assert span.status.status_code is StatusCode.ERROR, span.name
    assert span.attributes.get(attr.ERROR_CATEGORY) == "connection", dict(span.attributes)
    assert span.attributes.get(attr.ERROR_RETRYABLE) is not True


@pytest.fixture
def engine():
    engine = sa.create_engine(SA_URL, pool_size=2, max_overflow=0, pool_pre_ping=True)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS otel_db_fault (k text PRIMARY KEY)"))
    yield engine
    engine.dispose()


def test_sqlalchemy_connection_killed_mid_transaction(spans, engine):
    marker = f"after_kill_{uuid.uuid4().hex[:8]}"
    with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO otel_db_fault (k) VALUES (:k)"), {"k": uuid.uuid4().hex})
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        assert _terminate("pid = %s", pid) == 1
        conn.execute(sa.text(f"SELECT 1 AS {marker}"))
    (failed,) = [s for s in spans.db_spans() if marker in _text(s)]
    _assert_failed_on_connection(failed)
    # psycopg2 reports the closed socket without a SQLSTATE: no db.response.status_code.

    # The pool recovers: the next statement gets a fresh connection, counted once.
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 2 AS next_statement"))
    (after,) = [s for s in spans.db_spans() if "next_statement" in _text(s)]
    assert after.status.status_code is not StatusCode.ERROR
    assert after.attributes[attr.POOL_USED] == 1
    assert engine.pool.checkedout() == 0
    assert spans.open_spans() == []
    assert held_spans() == 0


def test_psycopg2_connection_killed_mid_transaction(spans):
    conn = psycopg2.connect(POSTGRES_URL)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        assert _terminate("pid = %s", pid) == 1
        with pytest.raises(psycopg2.OperationalError), conn.cursor() as cursor:
            cursor.execute("SELECT 1 AS psycopg2_after_kill")
    finally:
        conn.close()
    (failed,) = [s for s in spans.db_spans() if "psycopg2_after_kill" in _text(s)]
    _assert_failed_on_connection(failed)
    assert spans.open_spans() == []
    assert held_spans() == 0


def test_database_restart_under_load(spans):
    """3 workers x 2 s of transactions; every backend of the app killed every 150 ms."""
    engine = sa.create_engine(
        SA_URL,
        pool_size=3,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"application_name": APP_NAME},
    )
    tracer = trace.get_tracer("otel_db.tests.faults")
    outcomes = {"ok": 0, "library_error": 0}
    unexpected: list[BaseException] = []
    lock = threading.Lock()
    stop = time.monotonic() + 2.0

    def worker() -> None:
        for _ in range(10_000):  # bounded in count as well as in time
            if time.monotonic() >= stop:
                return
            try:
                with tracer.start_as_current_span("job"), engine.begin() as conn:
                    conn.execute(sa.text("SELECT pg_sleep(0.01) AS restart_load"))
                    conn.execute(sa.text("SELECT 1 AS restart_load"))
                outcome = "ok"
            except sa.exc.DBAPIError:  # OperationalError and kin: the library's normal errors
                outcome = "library_error"
            except BaseException as error:
                with lock:
                    unexpected.append(error)
                return
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=worker) for _ in range(3)]
    kills = 0
    try:
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads) and time.monotonic() < stop + 10:
            kills += _terminate("application_name = %s", APP_NAME)
            time.sleep(0.15)
        for thread in threads:
            thread.join(timeout=15)
        assert not any(t.is_alive() for t in threads)
        # After the "restart": the pool serves again.
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1 AS after_restart")).scalar_one() == 1
    finally:
        engine.dispose()

    print(f"restart under load: {outcomes}, {kills} backends terminated")
    assert unexpected == [], unexpected
    assert kills > 0 and outcomes["ok"] > 0 and outcomes["library_error"] > 0, (outcomes, kills)
    statements = [s for s in spans.db_spans() if "restart_load" in _text(s)]
    failed = [s for s in statements if s.status.status_code is StatusCode.ERROR]
    # Some errors surface at COMMIT (a driver call, not a statement span) or at checkout.
    assert 0 < len(failed) <= outcomes["library_error"]
    for span in failed:
        _assert_failed_on_connection(span)
    jobs = [s for s in spans.finished() if s.name == "job"]
    assert len(jobs) == outcomes["ok"] + outcomes["library_error"]
    failed_jobs = [s for s in jobs if s.status.status_code is StatusCode.ERROR]
    assert len(failed_jobs) == outcomes["library_error"]
    assert spans.open_spans() == []  # every started span ended
    assert held_spans() == 0


def test_pool_exhaustion_while_a_transaction_holds_the_connection(spans):
    engine = sa.create_engine(SA_URL, pool_size=1, max_overflow=0, pool_timeout=0.2)
    tracer = trace.get_tracer("otel_db.tests.faults")
    try:
        with engine.begin() as holder:
            holder.execute(sa.text("SELECT 1 AS holder_statement"))
            with pytest.raises(sa.exc.TimeoutError), tracer.start_as_current_span("waiting"):
                engine.connect()
            holder.execute(sa.text("SELECT 2 AS holder_statement"))
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 3 AS after_exhaustion"))
    finally:
        engine.dispose()
    (waiting,) = [s for s in spans.finished() if s.name == "waiting"]
    assert POOL_EXHAUSTED_EVENT in [e.name for e in waiting.events]
    assert waiting.status.status_code is StatusCode.ERROR
    holder_spans = [s for s in spans.db_spans() if "holder_statement" in _text(s)]
    assert len(holder_spans) == 2
    assert {s.attributes[attr.TRANSACTION_OUTCOME] for s in holder_spans} == {"committed"}
    (after,) = [s for s in spans.db_spans() if "after_exhaustion" in _text(s)]
    assert after.attributes[attr.POOL_USED] == 1 and after.attributes[attr.POOL_WAIT_MS] < 200
    assert spans.open_spans() == []
    assert held_spans() == 0
