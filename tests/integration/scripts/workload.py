"""The issue's acceptance workload, run under the launcher by the export tests.

Every SQL statement carries a marker column alias ``otel_db_wl_N`` (aliases survive
sanitizing) so the test can
count spans per statement. With ``--configure`` it calls ``otel_db.configure()`` itself
instead of relying on ``opentelemetry-instrument``; ``--configure-twice`` calls it twice.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys

if "--configure" in sys.argv or "--configure-twice" in sys.argv:
    import otel_db

    otel_db.configure()
    if "--configure-twice" in sys.argv:
        otel_db.configure()

import redis
import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.ext.asyncio import create_async_engine

PG = os.environ.get("OTEL_DB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("OTEL_DB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def sync_engine() -> None:
    engine = sa.create_engine(PG.replace("postgresql://", "postgresql+psycopg2://", 1))
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1 AS otel_db_wl_1"))
        conn.execute(sa.text("SELECT 1 AS otel_db_wl_2"))
    engine.dispose()


async def async_engine() -> None:
    engine = create_async_engine(PG.replace("postgresql://", "postgresql+asyncpg://", 1))
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1 AS otel_db_wl_3"))
    await engine.dispose()


def raw_sqlite3() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("SELECT 1 AS otel_db_wl_4")
    connection.cursor().execute("SELECT 1 AS otel_db_wl_5")
    connection.close()


def redis_commands() -> None:
    client = redis.Redis.from_url(REDIS)
    client.set("otel_db_wl_6", "1")
    client.get("otel_db_wl_7")
    client.close()


def main() -> None:
    with trace.get_tracer("workload").start_as_current_span("workload"):
        sync_engine()
        asyncio.run(async_engine())
        raw_sqlite3()
        redis_commands()
    if "--show-pipeline" in sys.argv:
        provider = trace.get_tracer_provider()
        processors = provider._active_span_processor._span_processors
        print(f"PROCESSORS={len(processors)}")
        print(f"RESOURCE_KEYS={sorted(provider.resource.attributes)}")


if __name__ == "__main__":
    main()
