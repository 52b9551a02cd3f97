"""Pool attributes on DB-API statement spans that ran on a pooled connection."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span

from otel_db.pipeline.deferred import DEFERRED
from otel_db.pipeline.enricher import SpanEnricher
from otel_db.pools.checkouts import CHECKOUTS
from otel_db.transactions.statement_site import CURRENT_SITE


class PoolAttributes(SpanEnricher):
    """Reads the pool a psycopg2 connection was checked out from, as the statement starts."""

    name = "pool-attributes"
    starts_client_only = True

    def on_start(self, span: Span, parent_context: Context | None) -> None:
        site = CURRENT_SITE.get()
        if site is None or site.connection is None:
            return
        found = CHECKOUTS.snapshot(site.connection)
        if found is not None:
            DEFERRED.add(span, found.attributes())
