"""Emits a small, known set of spans; run under `opentelemetry-instrument` by the e2e test.

Stand-in for examples/app.py until the demo app exists: a request span that issues a few
sqlite3 statements (instrumented by opentelemetry-instrument), with otel_db attributes set
by hand so the test does not depend on which enrichers are finished.
"""

from __future__ import annotations

import sqlite3

from opentelemetry import trace

from otel_db import attributes as attr

tracer = trace.get_tracer("otel_db.tests.stack")


def main() -> None:
    with tracer.start_as_current_span("GET /orders") as request_span:
        connection = sqlite3.connect(":memory:")
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, owner TEXT)")
        cursor.execute("INSERT INTO orders (id, owner) VALUES (1, 'alice')")
        for order_id in range(3):
            cursor.execute("SELECT owner FROM orders WHERE id = ?", (order_id,))
        connection.commit()
        connection.close()
        request_span.set_attribute(attr.N_PLUS_ONE_DETECTED, True)
        request_span.set_attribute(attr.N_PLUS_ONE_COUNT, 3)
        request_span.set_attribute(attr.QUERY_COUNT, 5)

        with tracer.start_as_current_span("SELECT orders", kind=trace.SpanKind.CLIENT) as span:
            span.set_attribute(attr.DB_SYSTEM_NAME, "sqlite")
            span.set_attribute(attr.DB_QUERY_SUMMARY, "SELECT orders")
            span.set_attribute(attr.QUERY_SLOW, True)
            span.set_attribute(attr.QUERY_SLOW_THRESHOLD_MS, 500.0)
            span.set_attribute(attr.POOL_UTILIZATION, 0.9)
            span.set_attribute(attr.TRANSACTION_OUTCOME, attr.OUTCOME_ROLLED_BACK)


if __name__ == "__main__":
    main()
