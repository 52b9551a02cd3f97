"""The value-free shape of a DynamoDB call, as ``db.query.text``.

contrib's botocore instrumentation records no statement for DynamoDB, so every ``Query``
on a table shares one fingerprint. otel_db writes the call's expressions instead:
``Query orders KeyConditionExpression: #pk = :pk AND #sk > :sk``. DynamoDB expressions
cannot hold values (they name them, ``:pk``, and pass them in
``ExpressionAttributeValues``, which is never read here), so the text is value-free by
construction; an expression with anything but names, placeholders, operators and
function calls in it (a quote, for one) is replaced by ``?``. The legacy parameters
(``KeyConditions``, ``ScanFilter``, ``Expected``) keep their attribute names and
comparison operators only. Bounded: items of a transaction and text length are capped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from otel_db.sql.analysis import StatementShape

#: The conventions' ``db.system.name`` for DynamoDB (contrib writes the legacy
#: ``db.system`` = ``dynamodb``).
SYSTEM: Final = "aws.dynamodb"
LEGACY_SYSTEM: Final = "dynamodb"
MAX_TEXT_CHARS: Final = 2048
MAX_ITEMS: Final = 16

_EXPRESSIONS: Final = (
    "KeyConditionExpression",
    "FilterExpression",
    "ConditionExpression",
    "UpdateExpression",
    "ProjectionExpression",
)
_LEGACY_CONDITIONS: Final = ("KeyConditions", "QueryFilter", "ScanFilter", "Expected")
_OPTIONS: Final = ("IndexName",)
# Names (#n, attr, a.b[0]), placeholders (:v), operators, function calls, keywords.
_SAFE_EXPRESSION: Final = re.compile(r"[\w#:.\[\]()<>=,\s-]*")
_SAFE_NAME: Final = re.compile(r"[\w.\-]+")
_TRANSACT_KINDS: Final = ("ConditionCheck", "Put", "Delete", "Update", "Get")


def _expression(value: object) -> str:
    if isinstance(value, str) and _SAFE_EXPRESSION.fullmatch(value):
        return " ".join(value.split())
    return "?"


def _name(value: object) -> str:
    return value if isinstance(value, str) and _SAFE_NAME.fullmatch(value) else "?"


def _legacy(conditions: object) -> str:
    if not isinstance(conditions, Mapping):
        return "?"
    parts = []
    for name, condition in list(conditions.items())[:32]:
        operator = condition.get("ComparisonOperator") if isinstance(condition, Mapping) else None
        if operator is None and isinstance(condition, Mapping) and "Exists" in condition:
            operator = "EXISTS"
        parts.append(f"{_name(name)} {_name(operator) if operator else '?'}")
    return ", ".join(parts)


def _params_shape(params: Mapping[str, Any]) -> str:
    parts = []
    for key in _OPTIONS:
        if key in params:
            parts.append(f"{key}: {_name(params[key])}")
    for key in _EXPRESSIONS:
        if key in params:
            parts.append(f"{key}: {_expression(params[key])}")
    for key in _LEGACY_CONDITIONS:
        if key in params:
            parts.append(f"{key}: {_legacy(params[key])}")
    return "; ".join(parts)


def table_of(params: Mapping[str, Any]) -> str | None:
    table = params.get("TableName")
    return table if isinstance(table, str) and table else None


def _one(operation: str, params: Mapping[str, Any]) -> str:
    table = table_of(params)
    head = f"{operation} {_name(table)}" if table else operation
    shape = _params_shape(params)
    return f"{head} {shape}" if shape else head


def _transaction(operation: str, items: object) -> str:
    if not isinstance(items, (list, tuple)):
        return operation
    shapes: list[str] = []
    for item in items:
        if len(shapes) >= MAX_ITEMS:
            shapes.append("...")
            break
        if not isinstance(item, Mapping):
            continue
        for kind in _TRANSACT_KINDS:
            if isinstance(item.get(kind), Mapping):
                shape = _one(kind, item[kind])
                if shape not in shapes:
                    shapes.append(shape)
                break
    return f"{operation} [{' | '.join(shapes)}]" if shapes else operation


def call_text(operation: str, params: Mapping[str, Any]) -> str:
    """The call's shape: operation, table, expressions. Never raises."""
    try:
        if operation in ("TransactWriteItems", "TransactGetItems"):
            text = _transaction(operation, params.get("TransactItems"))
        elif operation in ("BatchGetItem", "BatchWriteItem"):
            tables = params.get("RequestItems")
            names = sorted(_name(t) for t in tables) if isinstance(tables, Mapping) else []
            text = f"{operation} {', '.join(names[:MAX_ITEMS])}" if names else operation
        else:
            text = _one(operation, params)
        return text[:MAX_TEXT_CHARS]
    except Exception:
        return operation


# --- reading a text back (the span pipeline) ----------------------------------------

_TEXT: Final = re.compile(r"[\w#:.\[\]()<>=,;|\s?-]*")


def safe_text(text: str) -> tuple[str, str]:
    """(the text to export, the operation) for a span's ``db.query.text``: a text
    :func:`call_text` wrote comes back as it is; anything else is cut to its first word."""
    operation = text.split(" ", 1)[0]
    if not re.fullmatch(r"\w+", operation):
        return "?", "?"
    return (text if _TEXT.fullmatch(text) else operation), operation


def fingerprint(text: str) -> str:
    return hashlib.blake2b(f"{SYSTEM} {text}".encode("utf-8", "replace"), digest_size=8).hexdigest()


def statement_shape(text: str, table: str | None) -> StatementShape:
    """What the span pipeline records for a DynamoDB span's text (see :func:`safe_text`)."""
    safe, operation = safe_text(text)
    summary = f"{operation} {table}" if table else operation
    return StatementShape(safe, operation, summary, table, fingerprint(safe))
