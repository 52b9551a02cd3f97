"""A small shop that lives on its database: the otel_db demo.

Each "request" is an application span with its database spans beneath it, and each one
shows one thing otel_db flags, on purpose (the demo prints which, before the traces):

- ``POST /orders``: an ordinary committed transaction, nothing flagged;
- ``POST /customers``: an e-mail that is already registered: the statement fails with
  ``otel_db.error.category=constraint_violation`` and its transaction is ``rolled_back``;
- ``POST /refunds``: a refund larger than the order: the application rolls its own
  transaction back (``rolled_back``, no error);
- ``GET /orders``: lists the orders and lazy-loads each order's customer, one query per
  order: an N+1 run (``otel_db.n_plus_one.detected`` on the request);
- ``GET /reports/sales``: a report that waits 0.6 s in the database: a slow query
  (``otel_db.query.slow``, threshold 500 ms by default);
- ``GET /stats`` (only with ``REDIS_URL``): a count cached in Redis.

Needs only the ``sqlalchemy`` extra (``pip install 'otel-db[sqlalchemy]'``) and runs on
SQLite; on PostgreSQL when ``DATABASE_URL`` is set (e.g.
``postgresql+psycopg2://postgres@127.0.0.1/test``, with the ``postgres`` extra), caching
in Redis when ``REDIS_URL`` is set (``redis`` extra). Run it under
``opentelemetry-instrument``. ``DEMO_ITERATIONS`` (default 1; 0 runs until stopped) and
``DEMO_INTERVAL_SECONDS`` (default 2) make it generate traffic.
"""

from __future__ import annotations

import json
import os
import time

try:
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
except ModuleNotFoundError as missing:
    if missing.name is None or missing.name.partition(".")[0] != "sqlalchemy":
        raise
    raise SystemExit(
        "demo: examples/app.py needs SQLAlchemy, which is not installed. Install it with:\n"
        "    pip install 'otel-db[sqlalchemy]'"
    ) from None

from opentelemetry import trace

tracer = trace.get_tracer("otel_db.demo")

#: How long the sales report waits in the database: over the default 500 ms threshold.
SLOW_REPORT_MS = 600
CUSTOMERS = 8


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
    if url.startswith("sqlite"):
        engine = sa.create_engine(url)

        @sa.event.listens_for(engine, "connect")
        def _add_pause(dbapi_connection, _record):
            # SQLite has no sleep function: this one stands in for PostgreSQL's pg_sleep.
            dbapi_connection.create_function(
                "demo_pause", 1, lambda seconds: time.sleep(float(seconds)) or 0
            )

        return engine
    return sa.create_engine(url, pool_size=5, max_overflow=5)


def seed(engine: sa.Engine) -> None:
    """Fresh tables and a few rows, inserted in bulk (one statement per table)."""
    with tracer.start_as_current_span("seed demo data"):
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            session.execute(
                sa.insert(Customer),
                [{"email": f"customer{n}@example.com"} for n in range(CUSTOMERS)],
            )
            ids = session.scalars(sa.select(Customer.id).order_by(Customer.id)).all()
            session.execute(
                sa.insert(Order),
                [{"customer_id": c, "total_cents": 1000 + 250 * n} for n, c in enumerate(ids)],
            )


def place_order(engine: sa.Engine, customer_id: int, cents: int) -> None:
    """Nothing wrong: one INSERT in a committed transaction."""
    with tracer.start_as_current_span("POST /orders"), Session(engine) as session:
        session.begin()
        session.add(Order(customer_id=customer_id, total_cents=cents))
        session.commit()


def register_duplicate(engine: sa.Engine) -> None:
    """An error with a category: the e-mail is taken, the unique constraint rejects it."""
    with tracer.start_as_current_span("POST /customers"), Session(engine) as session:
        try:
            with session.begin():
                session.add(Customer(email="customer1@example.com"))
        except IntegrityError:
            pass  # the app answers 409; the trace shows why


def refund_too_large(engine: sa.Engine, order_id: int, cents: int) -> bool:
    """A rolled-back transaction without an error: the app undoes its own write."""
    with tracer.start_as_current_span("POST /refunds"), Session(engine) as session:
        session.begin()
        session.execute(
            sa.update(Order)
            .where(Order.id == order_id)
            .values(total_cents=Order.total_cents - cents)
        )
        left = session.scalar(sa.select(Order.total_cents).where(Order.id == order_id))
        if left is None or left < 0:
            session.rollback()  # more than the order's total: refused, nothing kept
            return False
        session.commit()
        return True


def list_orders(engine: sa.Engine) -> list[dict[str, object]]:
    """N+1: one query for the orders, then one lazy load of the customer per order."""
    with tracer.start_as_current_span("GET /orders"), Session(engine) as session:
        orders = session.scalars(sa.select(Order).order_by(Order.id)).all()
        return [{"id": o.id, "customer": o.customer.email} for o in orders]


def sales_report(engine: sa.Engine) -> int:
    """A slow query: the report waits SLOW_REPORT_MS in the database."""
    pause = sa.func.pg_sleep if engine.dialect.name == "postgresql" else sa.func.demo_pause
    waits = sa.select(pause(SLOW_REPORT_MS / 1000)).scalar_subquery()
    report = sa.select(sa.func.sum(Order.total_cents)).where(waits.is_not(None))
    with tracer.start_as_current_span("GET /reports/sales"), engine.connect() as conn:
        return conn.execute(report).scalar_one()


def cached_customer_count(engine: sa.Engine, redis_url: str) -> int | None:
    try:
        import redis
    except ModuleNotFoundError:
        print("demo: REDIS_URL is set but redis is not installed: pip install 'otel-db[redis]'")
        return None
    client = redis.Redis.from_url(redis_url)
    with tracer.start_as_current_span("GET /stats"):
        cached = client.get("demo:customer_count")
        if cached is not None:
            return json.loads(cached)
        with engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(Customer)).scalar_one()
        client.set("demo:customer_count", json.dumps(count), ex=30)
        return count


WHAT_EACH_REQUEST_SHOWS = (
    ("POST /orders", "an order, committed: nothing flagged"),
    ("POST /customers", "an e-mail already taken: error constraint_violation, tx rolled_back"),
    ("POST /refunds", "a refund over the order's total: the app rolls back (no error)"),
    ("GET /orders", "one query per order's customer: N+1 detected"),
    ("GET /reports/sales", f"waits {SLOW_REPORT_MS} ms in the database: SLOW"),
)


def run_once(engine: sa.Engine, iteration: int) -> None:
    place_order(engine, customer_id=1 + iteration % CUSTOMERS, cents=4200)
    register_duplicate(engine)
    refund_too_large(engine, order_id=1, cents=1_000_000)
    orders = list_orders(engine)
    total = sales_report(engine)
    print(f"demo: {len(orders)} orders, sales {total / 100:.2f}")
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        count = cached_customer_count(engine, redis_url)
        if count is not None:
            print(f"demo: {count} customers (cached in Redis)")


def main() -> None:
    iterations = int(os.environ.get("DEMO_ITERATIONS", "1"))
    interval = float(os.environ.get("DEMO_INTERVAL_SECONDS", "2"))
    print("demo: each request shows one thing otel_db flags, on purpose:")
    for name, what in WHAT_EACH_REQUEST_SHOWS:
        print(f"demo:   {name:<19} {what}")
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
