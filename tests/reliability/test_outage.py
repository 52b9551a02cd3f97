"""A collector outage mid-run at ~200 statements/s: failed batches are kept and retried.

Stock SDK 1.45 loses ~10% of spans over a 10 s outage and ~26% over 20 s (a failed batch
is dropped, never retried). Here a real OTLP/gRPC receiver is stopped mid-run and
restarted on the same port; the test counts distinct spans received. The guarantee is
the one docs/reliability.md names, with every default on: a SQLAlchemy app running each
statement in its own transaction (two spans per statement: the statement and its
transaction) at 200 statements/s loses <= 1% over a 30 s outage, and export resumes
within 1 s of the collector's return. The test runs the full 30 s outage (about 45 s).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.stack.otlp_receiver import OtlpTraceReceiver

from .conftest import REPO_ROOT, app_env, instrument_command

#: ``STATEMENTS`` sqlite3 statements paced at ~200/s (bounded in count and in time).
LOAD_APP = """
    import sqlite3, sys, time

    statements, rate = int(sys.argv[1]), 200.0
    connection = sqlite3.connect(":memory:")
    print("started", flush=True)
    begin = time.monotonic()
    for i in range(statements):
        connection.execute("SELECT 1").fetchall()
        pause = begin + (i + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    print(f"done {time.monotonic() - begin:.1f}", flush=True)
"""


#: ``STATEMENTS`` SQLAlchemy statements paced at ~200/s, each in its own transaction
#: (``engine.begin()``): a statement span and a transaction span per statement.
SQLALCHEMY_LOAD_APP = """
    import sys, time

    import sqlalchemy as sa

    statements, rate = int(sys.argv[1]), 200.0
    engine = sa.create_engine("sqlite://")
    print("started", flush=True)
    begin = time.monotonic()
    for i in range(statements):
        with engine.begin() as connection:
            connection.execute(sa.text("SELECT 1")).all()
        pause = begin + (i + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    print(f"done {time.monotonic() - begin:.1f}", flush=True)
"""

#: How long after the receiver's return its first span may arrive (the guarantee: 1 s).
RESUME_WITHIN_S = 1.0

#: Beyond the app's paced run time: the exit flush (bound 5 s) and slow machines.
EXIT_SLACK_S = 25.0


def _run_with_outage(
    tmp_path: Path,
    statements: int,
    outage_start: float,
    outage: float,
    app: str = LOAD_APP,
    **env: str,
) -> tuple[int, str, int, float | None, int]:
    """(distinct SELECT spans received, app stderr, app return code, seconds from the
    receiver's return to its first span, distinct SELECT and transaction spans received).

    The app paces ``statements`` at 200/s; the receiver is away from ``outage_start``
    to ``outage_start + outage`` seconds after the app's first statement. The app gets
    its run time plus ``EXIT_SLACK_S`` (start-up, the bounded exit flush) to finish.
    """
    script = tmp_path / "load.py"
    script.write_text(textwrap.dedent(app))
    port = free_port()
    receivers = [OtlpTraceReceiver(port=port).start()]
    environment = app_env(f"http://127.0.0.1:{port}", **env)
    # An empty value: the setting at its default, as if never set.
    environment = {key: value for key, value in environment.items() if value != ""}
    process = subprocess.Popen(
        [instrument_command(), sys.executable, str(script), str(statements)],
        env=environment,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "started"
        started = time.monotonic()
        time.sleep(outage_start)
        receivers[0].stop()
        time.sleep(outage)
        back = OtlpTraceReceiver(port=port).start()
        returned = time.monotonic()
        receivers.append(back)
        resumed_after = None
        for _ in range(500):  # bounded: 10 s in 20 ms steps
            if back.spans():
                resumed_after = time.monotonic() - returned
                break
            time.sleep(0.02)
        deadline = started + statements / 200 + EXIT_SLACK_S
        _, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        receivers[-1].stop()
    names = {
        received.span.span_id: received.name
        for receiver in receivers
        for received in receiver.spans()
    }
    selects = sum(1 for name in names.values() if name == "SELECT")
    transactions = sum(1 for name in names.values() if name.startswith("TRANSACTION"))
    return selects, stderr, process.returncode, resumed_after, selects + transactions


@pytest.mark.slow
def test_a_30_s_outage_with_transaction_spans_loses_at_most_1_percent(tmp_path: Path):
    # 40 s at 200 statements/s, two spans each (16,000 spans), every setting at its
    # default; the collector is away from 3 s to 33 s (12,000 spans end while it is
    # away), then 7 s of load with it back, so the reconnect and the backlog happen
    # while the app runs, not in the exit flush.
    statements = 8000
    received, stderr, returncode, resumed_after, spans = _run_with_outage(
        tmp_path, statements, 3.0, 30.0, app=SQLALCHEMY_LOAD_APP, OTEL_BSP_SCHEDULE_DELAY=""
    )
    assert returncode == 0, stderr
    expected = 2 * statements
    loss = 1 - spans / expected
    print(
        f"30 s outage at 200 statements/s, 2 spans each: {spans}/{expected} spans received "
        f"({received} statements), loss {loss:.2%}; first span {resumed_after} s after the "
        "collector's return"
    )
    assert loss <= 0.01, stderr
    assert received >= 0.99 * statements, stderr
    assert resumed_after is not None and resumed_after <= RESUME_WITHIN_S, (resumed_after, stderr)
    assert "is failing" in stderr, stderr
    assert "dropped (oldest first)" not in stderr, stderr  # the buffer never overflowed


@pytest.mark.slow
def test_an_outage_longer_than_the_buffer_drops_the_oldest_and_says_so(tmp_path: Path):
    statements = 2000  # 10 s; away from 2 s to 8 s = ~1200 spans, the buffer holds 300
    received, stderr, returncode, _, _ = _run_with_outage(
        tmp_path, statements, 2.0, 6.0, OTEL_BSP_MAX_QUEUE_SIZE="300", OTEL_BSP_SCHEDULE_DELAY="500"
    )
    assert returncode == 0, stderr
    assert "spans dropped (oldest first)" in stderr, stderr  # said while it happened
    at_exit = [line for line in stderr.splitlines() if "otel_db: at exit" in line]
    assert len(at_exit) == 1, stderr
    # Never "0 spans could not be exported" (a count of nothing is not said); "400 spans
    # could not be exported" is a count, checked below.
    assert not re.search(r"(?<!\d)0 spans? could not be exported", at_exit[0]), at_exit[0]
    dropped = int(re.search(r"(\d+) spans? were dropped earlier", at_exit[0]).group(1))
    assert dropped > 0
    # On a loaded machine the bounded exit flush may not get through the backlog: what
    # it leaves is reported in the same line, never silently gone.
    unsent = re.search(r"(\d+) spans? could not be exported", at_exit[0])
    lost = int(unsent.group(1)) if unsent else 0
    print(
        f"6 s outage, buffer 300: {received} received, {dropped} dropped, "
        f"{lost} unsent at exit, all reported"
    )
    # Everything neither dropped nor reported unsent arrived (a batch in flight at a
    # failure may count twice).
    assert statements - dropped - lost - 5 <= received <= statements, (received, dropped, stderr)
