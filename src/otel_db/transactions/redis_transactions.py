"""Redis pipelines: MULTI/EXEC transaction facts and the batch size, on the pipeline span.

A pipeline is one round trip and contrib makes one span for it. A MULTI/EXEC pipeline
(``transaction=True``, redis-py's default) gets no transaction span of its own: its
pipeline span carries ``otel_db.transaction.id`` (the pipeline span's own id),
``otel_db.transaction.outcome`` and ``otel_db.transaction.statement_count`` (the
commands queued between MULTI and EXEC), besides ``db.operation.batch.size``; a
pipeline without MULTI/EXEC carries ``db.operation.batch.size`` only.

Outcomes: ``committed`` when EXEC ran, ``rolled_back`` when EXEC was aborted
(``WatchError``: a watched key changed; ``ExecAbortError``), ``unknown`` when the
connection failed or a command error makes the outcome ambiguous (redis-py raises the
same ``ResponseError`` for a command that failed inside an EXEC that ran, and for a
queued command that made EXEC discard everything). A WATCH conflict is Redis's
optimistic locking working as designed: contrib leaves the span's status unset for it.

The facts are known the moment ``execute()`` returns or raises, inside contrib's span
(:func:`pipeline_ended` runs in a wrapper installed inside contrib's): they are handed
to the enrichment stage as deferred attributes, one dict per pipeline, so the pipeline
span goes straight through the holding stage with nothing to wait for, and there is
no tracker, registry or resolution memory involved.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as context_api
from opentelemetry.trace.propagation import _SPAN_KEY

from otel_db import attributes as attr
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED

REDIS_SCOPE = "opentelemetry.instrumentation.redis"

_TRANSACTION_ID = attr.TRANSACTION_ID
_OUTCOME = attr.TRANSACTION_OUTCOME
_STATEMENT_COUNT = attr.TRANSACTION_STATEMENT_COUNT
_BATCH_SIZE = attr.DB_OPERATION_BATCH_SIZE
_COMMITTED = attr.OUTCOME_COMMITTED


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


def outcome_of(error: BaseException | None) -> str:
    """The outcome of a MULTI/EXEC whose ``execute()`` ended with ``error``."""
    if error is None:
        return _COMMITTED
    from redis.exceptions import ExecAbortError, WatchError

    if isinstance(error, (WatchError, ExecAbortError)):
        return attr.OUTCOME_ROLLED_BACK
    return attr.OUTCOME_UNKNOWN


def pipeline_ended(commands: int, transaction: bool, error: BaseException | None) -> None:
    """contrib's pipeline span (current, about to end) ran ``commands`` commands, in a
    MULTI/EXEC when ``transaction``: its batch size and transaction facts, written as
    it ends."""
    try:
        span = context_api.get_current().get(_SPAN_KEY)
        if (
            span is None
            or getattr(getattr(span, "instrumentation_scope", None), "name", None) != REDIS_SCOPE
            or not span.is_recording()
        ):
            return  # no pipeline span of contrib's (sampled out, or not instrumented)
        if transaction:
            facts: dict[str, Any] = {
                _BATCH_SIZE: commands,
                _TRANSACTION_ID: f"{span.get_span_context().span_id:016x}",
                _OUTCOME: _COMMITTED if error is None else outcome_of(error),
                _STATEMENT_COUNT: commands,
            }
        else:
            facts = {_BATCH_SIZE: commands}
        DEFERRED.add(span, facts)
    except Exception as failure:
        FAILURES.report("redis pipeline facts", failure)
