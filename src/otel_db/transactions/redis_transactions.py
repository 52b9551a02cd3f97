"""Redis MULTI/EXEC pipelines as transactions.

A pipeline with ``transaction=True`` (redis-py's default) sends MULTI ... EXEC. Its
transaction span starts before contrib's pipeline span (so it is that span's parent) and
ends when ``execute()`` returns: ``committed`` when EXEC ran, ``rolled_back`` when EXEC
was aborted (``WatchError``: a watched key changed; ``ExecAbortError``), ``unknown`` when
the connection failed or a command error makes the outcome ambiguous (redis-py raises the
same ``ResponseError`` for a command that failed inside an EXEC that ran, and for a queued
command that made EXEC discard everything).

A WATCH conflict is Redis's optimistic locking working as designed (contrib leaves the
pipeline span's status unset for it): the transaction span is not marked as an error.
"""

from __future__ import annotations

from typing import Any

from otel_db import attributes as attr
from otel_db.pipeline.containment import FAILURES
from otel_db.transactions.tracker import Transaction, default_tracker


def is_transaction(pipeline: Any) -> bool:
    """Whether ``execute()`` on ``pipeline`` is going to send MULTI/EXEC."""
    if not (
        getattr(pipeline, "transaction", False) or getattr(pipeline, "explicit_transaction", False)
    ):
        return False
    # An empty, unwatched pipeline returns at once without a round trip.
    return bool(getattr(pipeline, "command_stack", None)) or bool(
        getattr(pipeline, "watching", False)
    )


def begin(pipeline: Any, system_attributes: dict[str, Any]) -> Transaction | None:
    try:
        name = f"TRANSACTION {system_attributes.get(attr.DB_NAMESPACE, '')}".strip()
        return default_tracker().start_unregistered(name, system_attributes)
    except Exception as failure:
        FAILURES.report("redis transaction begin", failure)
        return None


def outcome_of(error: BaseException | None) -> tuple[str, BaseException | None]:
    """(outcome, error to mark the transaction span with) for how ``execute()`` ended."""
    if error is None:
        return attr.OUTCOME_COMMITTED, None
    from redis.exceptions import ExecAbortError, WatchError

    if isinstance(error, WatchError):
        return attr.OUTCOME_ROLLED_BACK, None
    if isinstance(error, ExecAbortError):
        return attr.OUTCOME_ROLLED_BACK, error
    return attr.OUTCOME_UNKNOWN, None


def end(transaction: Transaction | None, error: BaseException | None) -> None:
    if transaction is None:
        return
    try:
        outcome, marked = outcome_of(error)
        default_tracker().end_transaction(transaction, outcome, marked)
    except Exception as failure:
        FAILURES.report("redis transaction end", failure)
