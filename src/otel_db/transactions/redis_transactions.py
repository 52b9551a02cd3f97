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

Why not the :class:`~otel_db.transactions.tracker.TransactionTracker`: a MULTI/EXEC is
one statement (contrib's pipeline span) whose fate is known the moment ``execute()``
returns or raises, inside contrib's span. So the pipeline span is given its transaction
id *and* outcome before it ends (:func:`statement_ended`, called from a wrapper inside
contrib's) and goes straight through the holding stage; there is nothing to hold,
resolve or remember for late spans, and no registry to keep. What the tracker would have
done per pipeline (a locked attribute write per fact, the resolution memory, the
listener round trip, holding the pipeline span) is about a quarter of otel_db's cost per
pipeline. The transaction span itself is the tracker's: same tracer (scope), name, kind,
attributes, id (its span id), outcome, statement count and error status.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import ProxyTracer, SpanKind
from opentelemetry.trace.propagation import _SPAN_KEY

from otel_db import attributes as attr
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.transactions.tracker import (
    TRACER_NAME,
    write_transaction_end,
)
from otel_db.version import __version__

REDIS_SCOPE = "opentelemetry.instrumentation.redis"

_TRANSACTION_ID = attr.TRANSACTION_ID
_OUTCOME = attr.TRANSACTION_OUTCOME
_COMMITTED = attr.OUTCOME_COMMITTED
_CLIENT = SpanKind.CLIENT

_tracer: trace.Tracer | None = None


def _get_tracer() -> trace.Tracer:
    """The tracer, fetched once the SDK's provider is set (a proxy is asked again)."""
    global _tracer
    found = _tracer
    if found is None:
        found = trace.get_tracer(TRACER_NAME, __version__)
        if not isinstance(found, ProxyTracer):
            _tracer = found
    return found


def reset_tracer() -> None:
    """Ask the provider for the tracer again on the next transaction (tests)."""
    global _tracer
    _tracer = None


class RedisTransaction:
    """One MULTI/EXEC: its span, its context token, its id, its pipeline spans."""

    __slots__ = ("id", "pipeline", "span", "statement_count", "token")

    def __init__(self, span: trace.Span, token: object, transaction_id: str, pipeline: Any):
        self.span = span
        self.token = token
        self.id = transaction_id
        self.pipeline = pipeline
        self.statement_count = 0


#: The transaction whose ``execute()`` is running, for the wrapper inside contrib's span.
CURRENT: ContextVar[RedisTransaction | None] = ContextVar("otel_db_redis_transaction", default=None)


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


_names: dict[Any, str] = {}


def _name(system_attributes: dict[str, Any]) -> str:
    namespace = system_attributes.get(attr.DB_NAMESPACE, "")
    found = _names.get(namespace)
    if found is None:
        found = f"TRANSACTION {namespace}".strip()
        if len(_names) < 256:  # bounded: one per database number in practice
            _names[namespace] = found
    return found


def begin(pipeline: Any, attributes: dict[str, Any]) -> RedisTransaction | None:
    """Start the transaction span and make it current (contrib's span becomes its child).

    ``attributes``: the pool's
    :func:`~otel_db.transactions.tracker.transaction_start_attributes` (shared, not mutated).
    """
    try:
        span = _get_tracer().start_span(_name(attributes), kind=_CLIENT, attributes=attributes)
        # The id is the span id, as for the tracker's transactions; it is written with
        # the outcome when the span ends (pipeline.deferred: one dict update, not a
        # locked attribute write per fact on the live span).
        transaction_id = f"{span.get_span_context().span_id:016x}"
        token = context_api.attach(trace.set_span_in_context(span))
        return RedisTransaction(span, token, transaction_id, pipeline)
    except Exception as failure:
        FAILURES.report("redis transaction begin", failure)
        return None


def outcome_of(error: BaseException | None) -> tuple[str, BaseException | None]:
    """(outcome, error to mark the transaction span with) for how ``execute()`` ended."""
    if error is None:
        return _COMMITTED, None
    from redis.exceptions import ExecAbortError, WatchError

    if isinstance(error, WatchError):
        return attr.OUTCOME_ROLLED_BACK, None
    if isinstance(error, ExecAbortError):
        return attr.OUTCOME_ROLLED_BACK, error
    return attr.OUTCOME_UNKNOWN, None


def statement_ended(transaction: RedisTransaction, error: BaseException | None) -> None:
    """Contrib's pipeline span (current, about to end) ran in ``transaction``: give it the
    transaction's id and outcome now, so the holding stage has nothing to wait for."""
    try:
        span = context_api.get_current().get(_SPAN_KEY)
        if (
            span is None
            or span is transaction.span
            or getattr(getattr(span, "instrumentation_scope", None), "name", None) != REDIS_SCOPE
            or not span.is_recording()
        ):
            return  # no statement span of contrib's (sampled out, or not instrumented)
        transaction.statement_count += 1
        outcome = _COMMITTED if error is None else outcome_of(error)[0]
        DEFERRED.add(span, {_TRANSACTION_ID: transaction.id, _OUTCOME: outcome})
    except Exception as failure:
        FAILURES.report("redis transaction statement", failure)


def end(transaction: RedisTransaction | None, error: BaseException | None) -> None:
    """End the transaction span with its outcome, and restore the context before it."""
    if transaction is None:
        return
    try:
        span = transaction.span
        try:
            if error is None:
                outcome, marked = _COMMITTED, None
            else:
                outcome, marked = outcome_of(error)
            if span.is_recording():
                write_transaction_end(
                    span, transaction.id, transaction.statement_count, outcome, marked
                )
        finally:
            # execute() runs between begin() and end() in one context (one thread or one
            # task): the token is this context's, and resetting it also drops any
            # context an inner layer attached and left behind.
            try:  # noqa: SIM105 - hot path: no context manager object per call
                context_api.detach(transaction.token)
            except Exception:  # another context: nothing to restore
                pass
            span.end()
    except Exception as failure:
        FAILURES.report("redis transaction end", failure)
