"""With ``OTEL_METRICS_EXPORTER=none`` the statement paths do no metric work at all.

A script under the launcher counts, while it runs raw psycopg2 (successful and failed
statements), redis GET and MULTI/EXEC, and SQLAlchemy statements: every measurement
reaching the SDK's measurement consumer, every record through otel_db's histogram
shortcuts, and the meters the SDK's provider holds. Exporting traces only, all stay at
zero; exporting metrics (the control run), the same script counts measurements, so the
counters do see them.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import POSTGRES_URL, REDIS_URL
from tests.integration.launcher import run_inline

SCRIPT = f"""
import json

from opentelemetry import metrics
from opentelemetry.sdk.metrics._internal.measurement_consumer import (
    SynchronousMeasurementConsumer,
)

from otel_db.metrics import instruments
from otel_db.metrics.interned_histogram import InternedAttributesHistogram
from otel_db.metrics.shared_histogram import SharedAttributesHistogram

counts = {{"measurements": 0, "shortcut_records": 0}}


def counting(original, key):
    def wrapper(*args, **kwargs):
        counts[key] += 1
        return original(*args, **kwargs)

    return wrapper


SynchronousMeasurementConsumer.consume_measurement = counting(
    SynchronousMeasurementConsumer.consume_measurement, "measurements"
)
SharedAttributesHistogram.record = counting(SharedAttributesHistogram.record, "shortcut_records")
if hasattr(InternedAttributesHistogram, "record_kept"):
    InternedAttributesHistogram.record_kept = counting(
        InternedAttributesHistogram.record_kept, "shortcut_records"
    )

import psycopg2
import redis
import sqlalchemy as sa

conn = psycopg2.connect({POSTGRES_URL!r})
conn.autocommit = True
cur = conn.cursor()
for i in range(5):
    cur.execute("SELECT %s", (i,))
    cur.fetchall()
try:
    cur.execute("SELECT * FROM otel_db_metrics_off_no_such_table")
except psycopg2.Error:
    pass
conn.close()

client = redis.Redis.from_url({REDIS_URL!r})
for i in range(5):
    client.get("otel_db_metrics_off:key")
with client.pipeline() as pipe:
    pipe.get("otel_db_metrics_off:key")
    pipe.execute()

engine = sa.create_engine("sqlite://")
with engine.connect() as connection:
    for i in range(5):
        connection.execute(sa.text("SELECT :i"), {{"i": i}}).fetchall()

provider = metrics.get_meter_provider()
counts["meters"] = len(getattr(provider, "_meters", {{}}))
counts["otel_db_instruments"] = instruments._default is not None
print("COUNTS " + json.dumps(counts))
"""


def _counts(tmp_path, metrics_exporter: str) -> dict[str, int]:
    result = run_inline(
        tmp_path,
        SCRIPT,
        env={"OTEL_METRICS_EXPORTER": metrics_exporter, "OTEL_TRACES_EXPORTER": "none"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("COUNTS ")]
    assert lines, result.stdout[-2000:]
    return json.loads(lines[-1][len("COUNTS ") :])


@pytest.mark.postgres
@pytest.mark.redis
def test_traces_only_records_no_measurement_and_creates_no_meter(tmp_path):
    counts = _counts(tmp_path, "none")
    assert counts == {
        "measurements": 0,
        "shortcut_records": 0,
        "meters": 0,
        "otel_db_instruments": False,
    }


@pytest.mark.postgres
@pytest.mark.redis
def test_the_counters_see_measurements_when_metrics_are_exported(tmp_path):
    counts = _counts(tmp_path, "console")
    assert counts["shortcut_records"] + counts["measurements"] >= 15
    assert counts["meters"] >= 1
    assert counts["otel_db_instruments"] is True
