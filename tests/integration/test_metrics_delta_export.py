"""db.client.operation.duration over OTLP with delta and low-memory temporality.

SDK 1.45.2 replaces a view match's aggregation table on every delta collection; a
histogram shortcut that kept recording into the old table lost every interval after
the first. Here the app runs under the launcher, exports to a real OTLP/HTTP receiver
every 200 ms and runs its statements in batches a few intervals apart: every statement
must arrive, in delta points, in the intervals after the first as well.
"""

from __future__ import annotations

import pytest

from tests.integration.launcher import run_inline
from tests.support.otlp_metrics_receiver import OtlpHttpMetricsReceiver

DURATION = "db.client.operation.duration"
DELTA = 1  # AGGREGATION_TEMPORALITY_DELTA in OTLP
BATCHES = 4

APP = f"""
import sqlite3
import time

import sqlalchemy as sa

engine = sa.create_engine("sqlite://")
conn = sqlite3.connect(":memory:")
cur = conn.cursor()
for batch in range({BATCHES}):
    for i in range(5 + batch):  # raw DB-API: contrib's histogram, interned by otel_db
        cur.execute("SELECT ?", (i,))
        cur.fetchall()
    with engine.connect() as connection:  # SQLAlchemy: otel_db's own histogram
        for i in range(3 + batch):
            connection.execute(sa.text("SELECT 1"))
    time.sleep(0.9)  # several export intervals between batches
conn.close()
print("DONE")
"""

SCOPES = {
    "opentelemetry.instrumentation.sqlite3": sum(5 + batch for batch in range(BATCHES)),
    "otel_db": sum(3 + batch for batch in range(BATCHES)),
}


@pytest.mark.slow
@pytest.mark.parametrize("temporality", ["delta", "lowmemory"])
def test_every_export_interval_carries_its_data_points(tmp_path, temporality):
    with OtlpHttpMetricsReceiver() as receiver:
        result = run_inline(
            tmp_path,
            APP,
            env={
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": f"{receiver.endpoint}/v1/metrics",
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": temporality,
                "OTEL_METRIC_EXPORT_INTERVAL": "200",
            },
        )
        assert result.returncode == 0, result.stderr
        assert "DONE" in result.stdout
        for scope, statements in SCOPES.items():
            # (SELECT only: SQLAlchemy's first connect runs a PRAGMA through sqlite3.)
            per_request = receiver.histogram_points(DURATION, scope, "SELECT")
            counts = [sum(count for _t, count in points) for points in per_request]
            temporalities = {t for points in per_request for t, _count in points}
            assert temporalities == {DELTA}, (scope, temporalities)
            # Each batch lands in its own export (the batches are intervals apart).
            assert sum(1 for count in counts if count) >= BATCHES, (scope, counts)
            assert sum(counts) == statements, (scope, counts)
