"""Sanitized text, summary, collection, fingerprint and name of every statement span.

Runs first among the enrichers: everything after it (N+1 detection, the terminal
exporter, the collector) only ever sees the sanitized text. The analysis itself lives
in :mod:`otel_db.sql` and is cached per statement text, so a statement the application
runs over and over costs a dictionary lookup here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.nosql import dynamodb_shape, mongo_shape
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import EndFilter, SpanEnricher
from otel_db.sql.analysis import (
    SMALL_STATEMENT_CHARS,
    StatementShape,
    analyze_redis_command,
    analyze_statement,
)
from otel_db.sql.fingerprint import fingerprint_redis_command

_REDIS = "redis"
_SHAPED_SYSTEMS: Final = {
    mongo_shape.SYSTEM: mongo_shape.statement_shape,
    dynamodb_shape.SYSTEM: dynamodb_shape.statement_shape,
    dynamodb_shape.LEGACY_SYSTEM: dynamodb_shape.statement_shape,
}
_CLIENT = SpanKind.CLIENT
# Contrib's Redis instrumentation joins the commands of a pipeline with newlines.
_PIPELINE_SEPARATOR = "\n"


def redis_shape(text: str) -> StatementShape:
    """Shape of a Redis command or pipeline; a pipeline is named per the conventions'
    batch rule: ``BATCH GET`` when every command is a GET, else ``BATCH``."""
    if _PIPELINE_SEPARATOR not in text:
        return analyze_redis_command(text)
    shapes = [analyze_redis_command(line) for line in text.split(_PIPELINE_SEPARATOR) if line]
    operations = {shape.operation for shape in shapes}
    operation = f"BATCH {operations.pop()}" if len(operations) == 1 else "BATCH"
    sanitized = _PIPELINE_SEPARATOR.join(shape.sanitized_text for shape in shapes)
    return StatementShape(
        sanitized, operation, operation, None, fingerprint_redis_command(operation)
    )


def span_name(shape: StatementShape, attributes: Mapping[str, AttributeValue]) -> str | None:
    """The conventions' name: ``{db.query.summary}``, else ``{db.operation.name} {target}``."""
    if shape.summary:
        return shape.summary
    operation = shape.operation or attributes.get(attr.DB_OPERATION_NAME)
    target = (
        attributes.get(attr.DB_COLLECTION_NAME)
        or attributes.get(attr.DB_NAMESPACE)
        or attributes.get(attr.LEGACY_DB_NAME)
    )
    if operation and target:
        return f"{operation} {target}"
    return str(operation or target or "") or None


#: Distinct (statement, attributes) combinations whose result is remembered per enricher.
MAX_CACHED_RESULTS: Final = 1024

# What the enricher's result depends on: the text and the span's own choices (read one
# by one in on_end: unpacking a map over them costs four times as much).
_TEXT: Final = attr.DB_QUERY_TEXT
_LEGACY_TEXT: Final = attr.LEGACY_DB_STATEMENT
_TEXT_KEYS: Final = (_TEXT, _LEGACY_TEXT)
_COLLECTION: Final = attr.DB_COLLECTION_NAME
_OPERATION: Final = attr.DB_OPERATION_NAME
_NAMESPACE: Final = attr.DB_NAMESPACE
_LEGACY_NAMESPACE: Final = attr.LEGACY_DB_NAME

_SYSTEM: Final = attr.DB_SYSTEM_NAME
_LEGACY_SYSTEM: Final = attr.LEGACY_DB_SYSTEM

_Result = tuple[dict[str, AttributeValue], "str | None"]
_NOTHING: Final[_Result] = ({}, None)


def _as_text(value: object) -> str | None:
    """A statement as text. contrib's psycopg2 records a ``bytes`` statement as it is;
    left so, it would skip sanitizing and break JSON exporters."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return None


class QueryShapeEnricher(SpanEnricher):
    """Writes ``db.query.summary``, ``db.collection.name``, ``otel_db.query.fingerprint``,
    the conventions' span name and, when sanitizing, the literal-free ``db.query.text``.

    The whole result (attributes to add, name) is remembered per statement text and the
    few attributes it depends on, so a statement the application repeats costs one
    dictionary lookup and one draft write.
    """

    name = "query-shape"
    end_filter = EndFilter(client_only=True)

    def __init__(self, sanitize: bool = True, capture_text: bool = True) -> None:
        self.sanitize = sanitize
        # False (OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT=false): the text is analysed for the
        # summary and fingerprint, then removed, so no later step or exporter sees it.
        self.capture_text = capture_text
        self._results: dict[tuple[object, ...], _Result] = {}

    def on_end(self, draft: SpanDraft) -> None:
        # Client spans that are not the lane's (failed ones, or another SDK's spans):
        # the same work on the draft's copy of the attributes.
        if draft.kind is not _CLIENT:
            return
        attributes = dict(draft.attributes)
        name = self.on_client_end(draft.span, draft.span_id, attributes)
        if attributes != draft.attributes:  # (a span left as it was is not copied)
            for key in _TEXT_KEYS:
                if key not in attributes:
                    draft.remove_attribute(key)
            draft.set_attributes(attributes)
        if name and name != draft.span.name:
            draft.rename(name)

    def on_client_end(
        self, span: ReadableSpan, span_id: int, attributes: dict[str, AttributeValue]
    ) -> str | None:
        get = attributes.get
        key: tuple[object, ...] | None = (
            get(_SYSTEM),
            get(_LEGACY_SYSTEM),
            get(_TEXT),
            get(_LEGACY_TEXT),
            get(_COLLECTION),
            get(_OPERATION),
            get(_NAMESPACE),
            get(_LEGACY_NAMESPACE),
        )
        try:
            result = self._results.get(key)  # type: ignore[arg-type]
        except TypeError:  # a sequence-valued attribute: not worth remembering
            key, result = None, None
        if result is None:
            result = self._first_seen(key, attributes)
            if result is None:
                return None
        updates, name = result
        if updates:
            attributes.update(updates)
        if not self.capture_text:
            attributes.pop(_TEXT, None)
            attributes.pop(_LEGACY_TEXT, None)
        return name

    def _first_seen(
        self, key: tuple[object, ...] | None, attributes: Mapping[str, AttributeValue]
    ) -> _Result | None:
        """What to add to a client span with ``attributes``, and its name, for a
        combination (``key``) not remembered: analysed, and remembered unless its text
        is long."""
        get = attributes.get
        system = get(_SYSTEM)  # db_system(), inlined
        if system is None:
            system = get(_LEGACY_SYSTEM)
        if not isinstance(system, str):
            return None
        # Nothing to analyse (a transaction or connection span) is remembered too.
        result = self._analyse(system, attributes) or _NOTHING
        text, legacy_text = get(_TEXT), get(_LEGACY_TEXT)
        if key is not None and not (
            (isinstance(text, str) and len(text) > SMALL_STATEMENT_CHARS)
            or (isinstance(legacy_text, str) and len(legacy_text) > SMALL_STATEMENT_CHARS)
        ):  # long texts are not kept here (they stay bounded in analysis)
            results = self._results
            if len(results) >= MAX_CACHED_RESULTS:
                results.clear()  # a workload past this many shapes is not repeating
            results[key] = result
        return result

    def _analyse(self, system: str, attributes: Mapping[str, AttributeValue]) -> _Result | None:
        text_key = attr.DB_QUERY_TEXT if attr.DB_QUERY_TEXT in attributes else None
        if text_key is None and attr.LEGACY_DB_STATEMENT in attributes:
            text_key = attr.LEGACY_DB_STATEMENT
        if text_key is None:
            return None  # a transaction or connection span: nothing to analyse
        text = _as_text(attributes[text_key])
        if text is None:
            return None
        if system == _REDIS:
            shape = redis_shape(text)
        elif system in _SHAPED_SYSTEMS:
            # The instrumentation wrote a value-free shape (otel_db's hooks): checked and
            # kept, never read as SQL.
            collection = attributes.get(attr.DB_COLLECTION_NAME)
            collection = collection if isinstance(collection, str) else None
            shape = _SHAPED_SYSTEMS[system](text, collection)
        else:
            shape = analyze_statement(text, system)
        updates: dict[str, AttributeValue] = {attr.QUERY_FINGERPRINT: shape.fingerprint}
        for key in (attr.DB_QUERY_TEXT, attr.LEGACY_DB_STATEMENT):
            if key not in attributes:
                continue
            if self.sanitize:
                if attributes[key] != shape.sanitized_text:
                    updates[key] = shape.sanitized_text
            elif isinstance(attributes[key], (bytes, bytearray)):
                updates[key] = _as_text(attributes[key])  # exporters expect text
        if shape.summary:
            updates[attr.DB_QUERY_SUMMARY] = shape.summary
        if shape.collection and attr.DB_COLLECTION_NAME not in attributes:
            updates[attr.DB_COLLECTION_NAME] = shape.collection
        if shape.operation and attr.DB_OPERATION_NAME not in attributes:
            updates[attr.DB_OPERATION_NAME] = shape.operation
        return updates, span_name(shape, {**attributes, **updates})
