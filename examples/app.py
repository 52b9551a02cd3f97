"""A small shop that lives on its database: the otel_db demo.

Runs on SQLite with nothing else installed, on PostgreSQL when ``DATABASE_URL`` is set
(e.g. ``postgresql+psycopg2://postgres@127.0.0.1/test``), and caches in Redis when
``REDIS_URL`` is set. Run it under ``opentelemetry-instrument``; each "request" is an
application span with the database spans beneath it. ``DEMO_ITERATIONS`` (default 1; 0
runs until stopped) and ``DEMO_INTERVAL_SECONDS`` (default 2) make it generate traffic.
"""

from __future__ import annotations

import json
import os
import time

import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

tracer = trace.get_tracer("otel_db.demo")

SLOW_REPORT_MS = 600


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "demo_customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(200), unique=True)
    orders: Mapped[list[Order]] = relationship(back_populates="customer")


class Order(Base):
    __tablename__ = "demo_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(sa.ForeignKey("demo_customers.id"))
    total_cents: Mapped[int]
    customer: Mapped[Customer] = relationship(back_populates="orders", lazy="select")


def make_engine() -> sa.Engine:
    url = os.environ.get("DATABASE_URL", "sqlite:///demo-shop.sqlite3")
    engine = (
        sa.create_engine(url, pool_size=5, max_overflow=5)
        if "sqlite" not in url
        else (sa.create_engine(url))
    )
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _add_sleep(dbapi_connection, _record):  # stands in for a heavy computation
            dbapi_connection.create_function(
                "pg_sleep", 1, lambda seconds: time.sleep(float(seconds)) or 0
            )

    return engine


def seed(engine: sa.Engine) -> None:
    with tracer.start_as_current_span("seed demo data"):
        _create_and_fill(engine)


def _create_and_fill(engine: sa.Engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        customers = [Customer(email=f"customer{n}@example.com") for n in range(8)]
        session.add_all(customers)
        session.flush()
        session.add_all(
            Order(customer_id=c.id, total_cents=1000 + 250 * n) for n, c in enumerate(customers)
        )


def place_order(engine: sa.Engine, customer_id: int, cents: int) -> None:
    with tracer.start_as_current_span("POST /orders"), Session(engine) as session:
        session.begin()  # committed below
        session.add(Order(customer_id=customer_id, total_cents=cents))
        session.commit()


def register_duplicate(engine: sa.Engine) -> None:
    with tracer.start_as_current_span("POST /customers"), Session(engine) as session:
        try:
            with session.begin():  # rolled back by the unique constraint
                session.add(Customer(email="customer1@example.com"))
        except IntegrityError:
            pass  # the app answers 409; the span shows the rolled-back transaction


def list_orders(engine: sa.Engine) -> list[dict[str, object]]:
    """N+1: one query for the orders, then one lazy load of the customer per order."""
    with tracer.start_as_current_span("GET /orders"), Session(engine) as session:
        orders = session.scalars(sa.select(Order).order_by(Order.id)).all()
        return [{"id": o.id, "customer": o.customer.email} for o in orders]


def sales_report(engine: sa.Engine) -> int:
    """A slow query: over the default 500 ms threshold."""
    with tracer.start_as_current_span("GET /reports/sales"), engine.connect() as conn:
        conn.execute(sa.select(sa.func.pg_sleep(SLOW_REPORT_MS / 1000)))
        return conn.execute(sa.select(sa.func.sum(Order.total_cents))).scalar_one()


def cached_customer_count(engine: sa.Engine, redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    with tracer.start_as_current_span("GET /stats"):
        cached = client.get("demo:customer_count")
        if cached is not None:
            return json.loads(cached)
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(Customer)).scalar_one()
        client.set("demo:customer_count", json.dumps(count), ex=30)
        return count


def run_once(engine: sa.Engine, iteration: int) -> None:
    place_order(engine, customer_id=1 + iteration % 8, cents=4200)
    register_duplicate(engine)
    orders = list_orders(engine)
    total = sales_report(engine)
    print(f"demo: {len(orders)} orders, sales {total / 100:.2f}")
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        print(f"demo: {cached_customer_count(engine, redis_url)} customers (cached in Redis)")


def main() -> None:
    iterations = int(os.environ.get("DEMO_ITERATIONS", "1"))
    interval = float(os.environ.get("DEMO_INTERVAL_SECONDS", "2"))
    engine = make_engine()
    seed(engine)
    iteration = 0
    while iterations == 0 or iteration < iterations:
        run_once(engine, iteration)
        iteration += 1
        if iterations == 0 or iteration < iterations:
            time.sleep(interval)
    engine.dispose()


if __name__ == "__main__":
    main()
