"""Tags DB-API and Redis statement spans with the transaction they run in."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span

from otel_db.pipeline.enricher import SpanEnricher
from otel_db.transactions.statement_site import CURRENT_SITE
from otel_db.transactions.tracker import TransactionTracker, default_tracker


class TransactionStatements(SpanEnricher):
    """``otel_db.transaction.id`` on statement spans started inside a tracked transaction.

    The outcome is added later by the holding stage, once the transaction has ended.
    """

    name = "transaction-statements"
    starts_client_only = True

    def __init__(self, tracker: TransactionTracker | None = None) -> None:
        self._tracker = tracker or default_tracker()

    def on_start(self, span: Span, parent_context: Context | None) -> None:
        site = CURRENT_SITE.get()
        if site is None or site.transaction is None:
            return
        self._tracker.statement_in(site.transaction, span)
