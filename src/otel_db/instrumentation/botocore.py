"""botocore (boto3, PynamoDB): contrib's DynamoDB spans as database spans.

contrib's ``BotocoreInstrumentor`` makes one CLIENT span per AWS call; for DynamoDB it
writes the legacy ``db.system`` = ``dynamodb`` and ``db.operation``, the table names
and capacity figures, and no statement. otel_db passes it two hooks (chained before
the caller's own) that act on DynamoDB calls only:

- request: the conventions' ``db.system.name`` (``aws.dynamodb``),
  ``db.operation.name``, ``db.collection.name`` (one table), ``db.query.text`` as the
  call's value-free shape (:mod:`otel_db.nosql.dynamodb_shape`: expressions and names,
  never ``Key``, ``Item`` or ``ExpressionAttributeValues``) and
  ``db.operation.batch.size`` for batches and transactions of more than one item;
- response: ``db.response.returned_rows`` (``Count`` of a Query/Scan, the items of a
  GetItem/BatchGetItem), and contrib's ``aws.dynamodb.item_collection_metrics`` with
  its item collection key values replaced by ``?``.

Failures are classified from the span's exception event by the error enricher
(``ConditionalCheckFailedException``, throttling, ``EndpointConnectionError``...:
:mod:`otel_db.nosql.errors`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.trace import Span

from otel_db import attributes as attr
from otel_db.nosql import dynamodb_shape
from otel_db.pipeline.containment import FAILURES

_SERVICE = "dynamodb"
_ITEM_COLLECTION_METRICS = "aws.dynamodb.item_collection_metrics"
_ITEM_COLLECTION_KEY = "ItemCollectionKey"


def _batch_size(operation: str, params: Mapping[str, Any]) -> int | None:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        items = params.get("TransactItems")
        return len(items) if isinstance(items, list) else None
    if operation in ("BatchWriteItem", "BatchGetItem"):
        tables = params.get("RequestItems")
        if not isinstance(tables, Mapping):
            return None
        total = 0
        for requests in tables.values():
            if isinstance(requests, list):  # BatchWriteItem: a list of requests
                total += len(requests)
            elif isinstance(requests, Mapping):  # BatchGetItem: {"Keys": [...]}
                keys = requests.get("Keys")
                total += len(keys) if isinstance(keys, list) else 0
        return total
    return None


def _request(span: Span, service: str, operation: str, params: Any) -> None:
    if service != _SERVICE:
        return
    try:
        if not span.is_recording() or not isinstance(params, Mapping):
            return
        updates: dict[str, Any] = {
            attr.DB_SYSTEM_NAME: dynamodb_shape.SYSTEM,
            attr.DB_OPERATION_NAME: operation,
            attr.DB_QUERY_TEXT: dynamodb_shape.call_text(operation, params),
        }
        table = dynamodb_shape.table_of(params)
        if table is not None:
            updates[attr.DB_COLLECTION_NAME] = table
        size = _batch_size(operation, params)
        if size is not None and size > 1:
            updates[attr.DB_OPERATION_BATCH_SIZE] = size
        span.set_attributes(updates)
    except Exception as failure:
        FAILURES.report("dynamodb request", failure)


def _returned_rows(operation: str, result: Mapping[str, Any]) -> int | None:
    if operation in ("Query", "Scan"):
        count = result.get("Count")
        return count if isinstance(count, int) else None
    if operation == "GetItem":
        return 1 if result.get("Item") else 0
    if operation == "BatchGetItem":
        responses = result.get("Responses")
        if isinstance(responses, Mapping):
            return sum(len(items) for items in responses.values() if isinstance(items, list))
    return None


def _without_key_values(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key: (
                dict.fromkeys(item, "?")
                if key == _ITEM_COLLECTION_KEY and isinstance(item, Mapping)
                else _without_key_values(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_key_values(item) for item in value]
    return value


def _response(span: Span, service: str, operation: str, result: Any) -> None:
    if service != _SERVICE:
        return
    try:
        if not span.is_recording() or not isinstance(result, Mapping) or "Error" in result:
            return
        rows = _returned_rows(operation, result)
        if rows is not None:
            span.set_attribute(attr.DB_RESPONSE_RETURNED_ROWS, rows)
        metrics = result.get("ItemCollectionMetrics")
        if metrics and _ITEM_COLLECTION_METRICS in (getattr(span, "attributes", None) or {}):
            span.set_attribute(_ITEM_COLLECTION_METRICS, json.dumps(_without_key_values(metrics)))
    except Exception as failure:
        FAILURES.report("dynamodb response", failure)


def _chain(ours: Callable[..., None], theirs: Any) -> Callable[..., None]:
    if not callable(theirs):
        return ours

    def both(span: Span, service: str, operation: str, payload: Any) -> None:
        ours(span, service, operation, payload)
        theirs(span, service, operation, payload)

    return both


class BotocoreStatementInstrumentor(BotocoreInstrumentor):
    """contrib's botocore instrumentor; DynamoDB calls become full database spans."""

    _instance = None  # BaseInstrumentor's per-class singleton (see RedisStatementInstrumentor)

    def _instrument(self, **kwargs: Any) -> None:
        kwargs["request_hook"] = _chain(_request, kwargs.get("request_hook"))
        kwargs["response_hook"] = _chain(_response, kwargs.get("response_hook"))
        super()._instrument(**kwargs)


__all__ = ["BotocoreStatementInstrumentor"]
