"""Where the pool and transaction features plug into the shared pipeline and hooks.

Each function is called from one line of the shared modules (``default_hooks``,
``build_enrichers``, ``processing_chain``) and honours ``OTEL_PYTHON_DB_POOL_ATTRIBUTES``
and ``OTEL_PYTHON_DB_TRANSACTION_SPANS``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from otel_db.pipeline.enricher import SpanEnricher
from otel_db.settings import Settings


def sqlalchemy_start_hooks(settings: Settings) -> list[Any]:
    """``StatementHooks.on_start`` entries for SQLAlchemy statements."""
    hooks: list[Any] = []
    if settings.pool_attributes:
        from otel_db.pools.sqlalchemy_pool import sqlalchemy_pool_hooks

        hooks.extend(sqlalchemy_pool_hooks())
    if settings.transaction_spans:
        from otel_db.transactions.sqlalchemy_transactions import sqlalchemy_transaction_hooks

        hooks.extend(sqlalchemy_transaction_hooks())
    return hooks


def driver_enrichers(settings: Settings) -> list[SpanEnricher]:
    """Enrichers tagging DB-API and Redis statement spans (their spans come from contrib)."""
    if not (settings.pool_attributes or settings.transaction_spans):
        return []
    from otel_db.enrichers.statement_site import StatementSiteFacts

    return [
        StatementSiteFacts(pool=settings.pool_attributes, transactions=settings.transaction_spans)
    ]


def holding_stage(settings: Settings, downstream: SpanProcessor) -> SpanProcessor:
    """The transaction holding stage in front of ``downstream``, when transactions are on."""
    if not settings.transaction_spans:
        return downstream
    from otel_db.pipeline.transaction_holding import TransactionHoldingStage

    return TransactionHoldingStage(downstream)
