"""One benchmark workload, timed from inside, run as its own process by the harness.

    [opentelemetry-instrument] python benchmarks/workload.py <name> --ops N [--warmup W]

It prints one line ``BENCH_RESULT {json}`` on stdout: the per-operation time of the
timed loop (``time.perf_counter_ns`` around the loop, after warm-up), the process's CPU
time over the same loop (``time.process_time_ns``: all threads), and how many
operations ran in total (warm-up included), so the harness can turn the spans the
receiver got into spans per operation.

This file is a standalone script on purpose: it runs in the project's environment and
in the contrib stack's separate virtualenv (where otel_db is not installed), under
SQLAlchemy 2.0 or 2.1. It imports nothing from otel_db or from the benchmarks package.

Set-up (tables, rows, keys, the first connection and the dialect's start-up queries)
runs with instrumentation suppressed, so every span the receiver counts comes from a
measured or warm-up operation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))
ROWS = 1000
TX_STATEMENTS = 10
PIPELINE_COMMANDS = 10
# Serialises table creation between concurrent runs (a test run beside a benchmark).
_SETUP_LOCK_ID = 727_006


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Suppress every OpenTelemetry instrumentation while set-up runs (if one is loaded)."""
    if "opentelemetry.context" not in sys.modules:
        yield
        return
    from opentelemetry import context

    token = context.attach(context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        context.detach(token)


def _prepare_postgres() -> None:
    import psycopg2

    connection = psycopg2.connect(POSTGRES_URL)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK_ID,))
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS bench_items "
                "(id integer PRIMARY KEY, name text NOT NULL, value integer NOT NULL)"
            )
            cursor.execute(
                "INSERT INTO bench_items (id, name, value) "
                "SELECT g, 'item ' || g, g FROM generate_series(1, %s) AS g "
                "ON CONFLICT (id) DO NOTHING",
                (ROWS,),
            )
            # UNLOGGED: the transaction workload measures tracing, not WAL fsyncs.
            cursor.execute(
                "CREATE UNLOGGED TABLE IF NOT EXISTS bench_tx (id integer PRIMARY KEY, n bigint)"
            )
            cursor.execute(
                "INSERT INTO bench_tx (id, n) SELECT g, 0 FROM generate_series(1, %s) AS g "
                "ON CONFLICT (id) DO NOTHING",
                (ROWS,),
            )
    finally:
        connection.close()


# ---------------------------------------------------------------------------- SQLite
def _sqlite_engine() -> tuple[Any, Any]:
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite:///:memory:")
    metadata = sa.MetaData()
    table = sa.Table(
        "bench_items",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("value", sa.Integer, nullable=False),
    )
    with untraced(), engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(
            table.insert(),
            [{"id": i, "name": f"item {i}", "value": i} for i in range(1, ROWS + 1)],
        )
    return engine, table


def sqlalchemy_sqlite(ops: int, warmup: int) -> Callable[[int], None]:
    """SQLAlchemy Core on in-memory SQLite, one connection reused for every statement."""
    import sqlalchemy as sa

    engine, table = _sqlite_engine()
    query = sa.select(table.c.id, table.c.name).where(table.c.id == sa.bindparam("id"))
    with untraced():
        connection = engine.connect()

    def op(i: int) -> None:
        connection.execute(query, {"id": i % ROWS + 1}).fetchall()

    return op


def sqlalchemy_sqlite_connect(ops: int, warmup: int) -> Callable[[int], None]:
    """The same statement, with a connection checked out of the pool for each one."""
    import sqlalchemy as sa

    engine, table = _sqlite_engine()
    query = sa.select(table.c.id, table.c.name).where(table.c.id == sa.bindparam("id"))

    def op(i: int) -> None:
        with engine.connect() as connection:
            connection.execute(query, {"id": i % ROWS + 1}).fetchall()

    return op


# ---------------------------------------------------------------------------- ORM
def _orm() -> tuple[Any, Any, Any]:
    import sqlalchemy as sa
    from sqlalchemy import orm

    class Base(orm.DeclarativeBase):
        pass

    class Item(Base):  # no annotations: this module uses postponed evaluation
        __tablename__ = "bench_items"
        id = orm.mapped_column(sa.Integer, primary_key=True)
        name = orm.mapped_column(sa.String, nullable=False)
        value = orm.mapped_column(sa.Integer, nullable=False)

    with untraced():
        _prepare_postgres()
    # Created as an application creates it: under suppression, contrib's create_engine
    # wrapper would not attach its SQLAlchemy tracer and contrib would trace less.
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://"))
    with untraced(), engine.connect() as connection:  # dialect start-up queries, untraced
        connection.execute(sa.text("SELECT 1"))
    return engine, Item, orm


def orm_postgres(ops: int, warmup: int) -> Callable[[int], None]:
    """ORM select by primary key on PostgreSQL, one long-lived session."""
    import sqlalchemy as sa

    engine, Item, orm = _orm()
    session = orm.Session(engine)

    def op(i: int) -> None:
        session.execute(sa.select(Item).where(Item.id == i % ROWS + 1)).scalar_one()
        if i % 100 == 99:
            session.expunge_all()  # keep the identity map from growing with the run

    return op


def orm_postgres_session(ops: int, warmup: int) -> Callable[[int], None]:
    """The same select, with a new session (and transaction) for each operation."""
    import sqlalchemy as sa

    engine, Item, orm = _orm()

    def op(i: int) -> None:
        with orm.Session(engine) as session:
            session.execute(sa.select(Item).where(Item.id == i % ROWS + 1)).scalar_one()

    return op


def transaction_postgres(ops: int, warmup: int) -> Callable[[int], None]:
    """One operation = a transaction of 10 UPDATEs (SQLAlchemy Core, PostgreSQL), committed."""
    import sqlalchemy as sa

    with untraced():
        _prepare_postgres()
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://"))
    with untraced(), engine.connect() as connection:  # as in _orm: engine created traced
        connection.execute(sa.text("SELECT 1"))
    update = sa.text("UPDATE bench_tx SET n = n + 1 WHERE id = :id")

    def op(i: int) -> None:
        base = (i * TX_STATEMENTS) % (ROWS - TX_STATEMENTS)
        with engine.begin() as connection:
            for k in range(1, TX_STATEMENTS + 1):
                connection.execute(update, {"id": base + k})

    return op


# ---------------------------------------------------------------------------- async
async def async_postgres(ops: int, warmup: int) -> int:
    """Async engine (asyncpg) on PostgreSQL, one AsyncConnection reused.

    The whole loop runs inside the event loop, so the timing covers the statements,
    not a ``run_until_complete`` per operation. Returns the timed loop's nanoseconds.
    """
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    with untraced():
        _prepare_postgres()
    engine = create_async_engine(POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://"))
    with untraced():
        connection = await engine.connect()
        await connection.execute(sa.text("SELECT 1"))
    query = sa.text("SELECT id, name FROM bench_items WHERE id = :id")
    for i in range(warmup):
        (await connection.execute(query, {"id": i % ROWS + 1})).fetchall()
    start, cpu_start = time.perf_counter_ns(), time.process_time_ns()
    for i in range(ops):
        (await connection.execute(query, {"id": i % ROWS + 1})).fetchall()
    elapsed, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu_start
    with untraced():
        await connection.close()
        await engine.dispose()
    return elapsed, cpu


# ---------------------------------------------------------------------------- drivers
def psycopg2_raw(ops: int, warmup: int) -> Callable[[int], None]:
    """Raw psycopg2: a parameterised SELECT by primary key on one cursor (autocommit)."""
    import psycopg2

    with untraced():
        _prepare_postgres()
    connection = psycopg2.connect(POSTGRES_URL)
    connection.autocommit = True
    cursor = connection.cursor()

    def op(i: int) -> None:
        cursor.execute("SELECT id, name FROM bench_items WHERE id = %s", (i % ROWS + 1,))
        cursor.fetchall()

    return op


def _contrib_dbapi_baseline(module: Any, system: str) -> None:
    """On the contrib stack, trace ``module`` with contrib's generic DB-API integration:
    contrib has no instrumentation of its own for it (pg8000), so this is what a contrib
    user would do. Nothing happens on the otel_db stack, which instruments it itself."""
    if os.environ.get("OTEL_PYTHON_DISTRO") != "distro":
        return
    from opentelemetry.instrumentation.dbapi import trace_integration

    trace_integration(module, "connect", system)


def pg8000_raw(ops: int, warmup: int) -> Callable[[int], None]:
    """Raw pg8000 (its DB-API interface): the psycopg2 workload's SELECT, autocommit."""
    import pg8000

    with untraced():
        _prepare_postgres()
    _contrib_dbapi_baseline(pg8000, "postgresql")
    connection = pg8000.connect(user="postgres", host="127.0.0.1", port=5432, database="test")
    connection.autocommit = True
    cursor = connection.cursor()

    def op(i: int) -> None:
        cursor.execute("SELECT id, name FROM bench_items WHERE id = %s", (i % ROWS + 1,))
        cursor.fetchall()

    return op


MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("BENCH_MYSQL_PORT", "3306"))


def mysql_connector_raw(ops: int, warmup: int) -> Callable[[int], None]:
    """Raw mysql-connector on MariaDB: a SELECT by primary key on one cursor, autocommit."""
    import mysql.connector

    def connect() -> Any:
        return mysql.connector.connect(
            host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="", database="test"
        )

    with untraced():
        setup = connect()
        try:
            cursor = setup.cursor()
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS bench_items "
                "(id integer PRIMARY KEY, name varchar(64) NOT NULL, value integer NOT NULL)"
            )
            cursor.executemany(
                "INSERT IGNORE INTO bench_items (id, name, value) VALUES (%s, %s, %s)",
                [(i, f"item {i}", i) for i in range(1, ROWS + 1)],
            )
            setup.commit()
        finally:
            setup.close()
    connection = connect()
    connection.autocommit = True
    cursor = connection.cursor()

    def op(i: int, _connection: Any = connection) -> None:  # the cursor holds it weakly
        cursor.execute("SELECT id, name FROM bench_items WHERE id = %s", (i % ROWS + 1,))
        cursor.fetchall()

    return op


def _redis() -> Any:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    with untraced():
        client.mset({f"bench:item:{i}": f"value {i}" for i in range(100)})
    return client


def redis_get(ops: int, warmup: int) -> Callable[[int], None]:
    """redis GET of one of 100 keys."""
    client = _redis()

    def op(i: int) -> None:
        client.get(f"bench:item:{i % 100}")

    return op


def redis_pipeline(ops: int, warmup: int) -> Callable[[int], None]:
    """One operation = a (MULTI/EXEC) pipeline of 10 GETs."""
    client = _redis()

    def op(i: int) -> None:
        pipeline = client.pipeline()
        for k in range(PIPELINE_COMMANDS):
            pipeline.get(f"bench:item:{(i + k) % 100}")
        pipeline.execute()

    return op


WORKLOADS: dict[str, Callable[[int, int], Callable[[int], None]]] = {
    "sa_sqlite": sqlalchemy_sqlite,
    "sa_sqlite_connect": sqlalchemy_sqlite_connect,
    "orm_pg": orm_postgres,
    "orm_pg_session": orm_postgres_session,
    "psycopg2": psycopg2_raw,
    "redis_get": redis_get,
    "redis_pipeline": redis_pipeline,
    "tx10_pg": transaction_postgres,
    "pg8000": pg8000_raw,
    "mysql_connector": mysql_connector_raw,
}
ASYNC_WORKLOADS: dict[str, Callable[[int, int], Any]] = {"async_pg": async_postgres}


def run(name: str, ops: int, warmup: int) -> dict[str, Any]:
    if name in ASYNC_WORKLOADS:
        loop = asyncio.new_event_loop()
        try:
            elapsed, cpu = loop.run_until_complete(ASYNC_WORKLOADS[name](ops, warmup))
        finally:
            loop.close()
    else:
        op = WORKLOADS[name](ops, warmup)
        for i in range(warmup):
            op(i)
        start, cpu_start = time.perf_counter_ns(), time.process_time_ns()
        for i in range(ops):
            op(i)
        elapsed, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu_start
    return {
        "workload": name,
        "ops": ops,
        "warmup": warmup,
        "elapsed_ns": elapsed,
        "ns_per_op": elapsed / ops,
        # CPU time of the whole process (every thread, the exporter's included) over the
        # same loop: far less disturbed than wall time by other load on the machine.
        "cpu_ns_per_op": cpu / ops,
        "sqlalchemy": _version("sqlalchemy"),
        "python": sys.version.split()[0],
        "traced": _traced(),
    }


def _traced() -> bool:
    """Whether an SDK tracer provider is installed (redis 8 imports the API on its own)."""
    if "opentelemetry.trace" not in sys.modules:
        return False
    from opentelemetry import trace

    return type(trace.get_tracer_provider()).__name__ == "TracerProvider"


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("name", choices=sorted({*WORKLOADS, *ASYNC_WORKLOADS}))
    parser.add_argument("--ops", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=None, help="default: ops // 10, >= 20")
    args = parser.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else max(20, args.ops // 10)
    result = run(args.name, max(1, args.ops), max(0, warmup))
    print("BENCH_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
