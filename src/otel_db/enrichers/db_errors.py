"""``db.response.status_code``, ``error.type``, ``otel_db.error.category`` and
``otel_db.error.retryable`` on failed statement spans.

Two paths, one result. otel_db's SQLAlchemy listener hands the exception object to
:func:`record_error_facts` (an ``on_error`` statement hook), which classifies it
exactly. Spans from the contrib instrumentations (psycopg2, redis, sqlite3, asyncpg,
pymysql) only keep an exception event, classified from its type and message by
:class:`DatabaseErrorEnricher` when the span ends. Either runs before the message is
scrubbed; the classification does not need the values, but the raw text is richer.
"""

from __future__ import annotations

from opentelemetry.trace import Span, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.enrichers.query_sanitizer import EXCEPTION_MESSAGE, EXCEPTION_TYPE
from otel_db.pipeline.db_span import is_db_client_span
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import EndFilter, SpanEnricher
from otel_db.sql.errors import OTHER, ErrorFacts, classify_exception, classify_exception_event


def error_attributes(facts: ErrorFacts) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {
        attr.ERROR_TYPE: facts.error_type,
        attr.ERROR_CATEGORY: facts.category,
        attr.ERROR_RETRYABLE: facts.retryable,
    }
    if facts.status_code:
        out[attr.DB_RESPONSE_STATUS_CODE] = facts.status_code
    return out


def record_error_facts(span: Span, exception: BaseException) -> None:
    """SQLAlchemy ``on_error`` hook: classify the driver's exception behind the wrapper.

    ``error.type`` becomes the driver's class (``psycopg2.errors.UniqueViolation``), so a
    failure reads the same whether it came through SQLAlchemy or the raw driver.
    """
    span.set_attributes(error_attributes(classify_exception(exception)))


class DatabaseErrorEnricher(SpanEnricher):
    """Classifies failed database spans that no hook classified, from their exception event."""

    name = "db-errors"
    end_filter = EndFilter(client_only=True, troubled_only=True)

    def on_end(self, draft: SpanDraft) -> None:
        span = draft.span
        if span.status.status_code is not StatusCode.ERROR:
            return
        attributes = draft.attributes
        if attr.ERROR_CATEGORY in attributes or not is_db_client_span(span.kind, attributes):
            return
        facts: ErrorFacts | None = None
        exception_type = ""
        for event in span.events:
            if event.name != "exception":
                continue
            event_attributes = event.attributes or {}
            exception_type = str(event_attributes.get(EXCEPTION_TYPE) or "")
            message = str(event_attributes.get(EXCEPTION_MESSAGE) or "")
            facts = classify_exception_event(exception_type, message)
            break
        if facts is None:
            error_type = attributes.get(attr.ERROR_TYPE) or exception_type or "_OTHER"
            facts = ErrorFacts(None, OTHER, False, str(error_type))
        updates = error_attributes(facts)
        if attr.ERROR_TYPE in attributes:  # the instrumentation's own choice stands
            del updates[attr.ERROR_TYPE]
        draft.set_attributes(updates)
