"""Recognising database client spans, whatever instrumentation made them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr

#: Where a ``SpanContext`` (a tuple) keeps the span id. ``context[SPAN_ID]`` is what
#: ``context.span_id`` returns, without the property's Python call: the hot path reads
#: three span ids per statement. tests/unit/test_pipeline_stage.py checks the position.
SPAN_ID: Final = 1


def db_system(attributes: Mapping[str, AttributeValue] | None) -> str | None:
    """The span's database system (stable or legacy name), or None for other spans."""
    if not attributes:
        return None
    system = attributes.get(attr.DB_SYSTEM_NAME)
    if system is None:
        system = attributes.get(attr.LEGACY_DB_SYSTEM)
    return system if isinstance(system, str) else None


def is_db_client_span(kind: SpanKind, attributes: Mapping[str, AttributeValue] | None) -> bool:
    # Transaction/savepoint spans (they carry a statement count) are not statements; a
    # Redis MULTI/EXEC pipeline carries one too, with its batch size: it is a statement.
    return (
        kind is SpanKind.CLIENT
        and db_system(attributes) is not None
        and (
            attr.TRANSACTION_STATEMENT_COUNT not in attributes  # type: ignore[operator]
            or attr.DB_OPERATION_BATCH_SIZE in attributes  # type: ignore[operator]
        )
    )


def query_text(attributes: Mapping[str, AttributeValue]) -> str | None:
    text = attributes.get(attr.DB_QUERY_TEXT)
    if text is None:
        text = attributes.get(attr.LEGACY_DB_STATEMENT)
    return text if isinstance(text, str) else None
