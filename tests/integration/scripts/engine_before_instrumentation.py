"""An engine created before instrumentation, then instrumented, is traced exactly once."""

import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

engine = sa.create_engine("sqlite://")

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor  # noqa: E402
from otel_db.instrumentation.sqlite3 import SQLite3StatementInstrumentor  # noqa: E402

SQLAlchemyStatementInstrumentor().instrument()
SQLite3StatementInstrumentor().instrument()
with engine.connect() as conn:
    conn.execute(sa.text("SELECT 1 AS early_engine"))
texts = [
    s.attributes.get("db.query.text") or s.attributes.get("db.statement")
    for s in exporter.get_finished_spans()
]
print("SPANS=" + repr([t for t in texts if t and "early_engine" in t]))
