"""Pool and transaction facts on DB-API and Redis statement spans, as they start.

contrib starts these statement spans inside the driver call; otel_db's wrapper around
that call has set :data:`~otel_db.transactions.statement_site.CURRENT_SITE` (the
connection, and the transaction it is in). One enricher reads it once per client span
for both features: every client span pays for this hook, DB-API or not.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span

from otel_db.pipeline.deferred import DEFERRED
from otel_db.pipeline.enricher import SpanEnricher
from otel_db.pools.checkouts import CHECKOUTS
from otel_db.transactions.statement_site import CURRENT_SITE
from otel_db.transactions.tracker import TransactionTracker, default_tracker


class StatementSiteFacts(SpanEnricher):
    """Pool attributes of the connection the statement runs on (``pool``), and
    ``otel_db.transaction.id`` of the tracked transaction it runs in (``transactions``;
    the outcome is added later by the holding stage, once the transaction has ended)."""

    name = "statement-site"
    starts_client_only = True

    def __init__(self, *, pool: bool = True, transactions: bool = True) -> None:
        self.pool = pool
        self._tracker: TransactionTracker | None = default_tracker() if transactions else None

    def on_start(self, span: Span, parent_context: Context | None) -> None:
        site = CURRENT_SITE.get()
        if site is None:
            return
        if self.pool and site.connection is not None:
            found = CHECKOUTS.snapshot(site.connection)
            if found is not None:
                DEFERRED.add(span, found.attributes())
        if self._tracker is not None and site.transaction is not None:
            self._tracker.statement_in(site.transaction, span)
