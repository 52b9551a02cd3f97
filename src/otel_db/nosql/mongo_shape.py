"""The value-free shape of a MongoDB command, as ``db.query.text``.

contrib's pymongo instrumentation records the command name only, or, with
``capture_statement``, ``str()`` of its filter with every value in it. otel_db records
the command's structure instead: keys and operators kept, every value ``?``, so
``find users {"filter": {"status": ?}}`` and
``find users {"filter": {"user_id": ?, "created": {"$gt": ?}}}`` are told apart (and
fingerprinted apart) while ``status`` = ``"paid"`` and ``"open"`` share one shape.

The text is built from the command document, never from a rendering of it, so a value
cannot slip through: strings, numbers, dates, ObjectIds and binaries are all ``?``; a list
of values is one ``?`` (like an IN list); a list of documents keeps one shape per run of
equal shapes. Bounded: depth, keys per document and text length are capped.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final

from otel_db.sql.analysis import StatementShape

SYSTEM: Final = "mongodb"
MAX_DEPTH: Final = 12
MAX_KEYS: Final = 64
MAX_LIST_SHAPES: Final = 16
MAX_TEXT_CHARS: Final = 2048
_ELLIPSIS: Final = "..."

#: The parts of each command that make its shape (the rest, such as ``lsid``,
#: ``$db``, ``batchSize``, ``limit`` or cursor ids, says nothing about the query).
SHAPE_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "find": ("filter", "projection", "sort", "hint"),
    "aggregate": ("pipeline", "hint"),
    "count": ("query", "hint"),
    "distinct": ("key", "query"),
    "update": ("updates",),
    "delete": ("deletes",),
    "findAndModify": ("query", "sort", "update", "fields", "remove", "upsert", "new"),
    "insert": ("documents",),
    "createIndexes": ("indexes",),
    "dropIndexes": ("index",),
}
#: Values that name a field rather than hold data: kept as text.
_FIELD_NAME_VALUES: Final = frozenset({("distinct", "key")})
#: Documents as a whole are data: an insert's shape is its collection.
_OPAQUE_FIELDS: Final = frozenset({("insert", "documents")})


def _shape(value: Any, depth: int) -> str:
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return "{...}"
        parts = []
        for index, (key, item) in enumerate(value.items()):
            if index >= MAX_KEYS:
                parts.append(_ELLIPSIS)
                break
            parts.append(f"{json.dumps(str(key))}: {_shape(item, depth + 1)}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        if not any(isinstance(item, (Mapping, list, tuple)) for item in value):
            return "?"  # a list of values, whatever its length
        if depth >= MAX_DEPTH:
            return "[...]"
        shapes: list[str] = []
        for item in value:
            shape = _shape(item, depth + 1)
            if shapes and shapes[-1] == shape:
                continue  # a run of equal shapes is one shape, whatever its length
            if len(shapes) >= MAX_LIST_SHAPES:
                shapes.append(_ELLIPSIS)
                break
            shapes.append(shape)
        return "[" + ", ".join(shapes) + "]"
    return "?"


def command_text(command_name: str, collection: str | None, command: Mapping[str, Any]) -> str:
    """``{command} {collection} {shape}``: the command's shape fields, values hidden.
    Never raises (an unreadable command is its name and collection)."""
    head = f"{command_name} {collection}" if collection else command_name
    try:
        parts = []
        for field in SHAPE_FIELDS.get(command_name, ()):
            if field not in command:
                continue
            value = command[field]
            if (command_name, field) in _FIELD_NAME_VALUES and isinstance(value, str):
                shape = json.dumps(value)
            elif (command_name, field) in _OPAQUE_FIELDS:
                shape = "?"
            else:
                shape = _shape(value, 0)
            parts.append(f"{json.dumps(field)}: {shape}")
        if not parts:
            return head
        text = f"{head} {{{', '.join(parts)}}}"
        if len(text) > MAX_TEXT_CHARS:
            text = text[: MAX_TEXT_CHARS - len(_ELLIPSIS)] + _ELLIPSIS
        return text
    except Exception:
        return head


# --- reading a text back (the span pipeline) ----------------------------------------

_KEY: Final = re.compile(r'"(?:[^"\\]|\\.)*"\s*:')
# distinct's field name, the one string value command_text writes (first, at the top).
_DISTINCT_KEY: Final = re.compile(r'\{"key": "(?:[^"\\]|\\.)*"')
_SHAPE_CHARS: Final = frozenset("{}[],:?. ")
_COMMAND: Final = re.compile(r"[A-Za-z_$][\w$]*")


def _is_shape(text: str, command_name: str) -> bool:
    """Whether ``text`` is made of keys and ``?`` only (what :func:`command_text` writes)."""
    if command_name == "distinct":
        text = _DISTINCT_KEY.sub('{"key": ?', text, count=1)
    return set(_KEY.sub("", text)) <= _SHAPE_CHARS


def safe_text(text: str, collection: str | None) -> tuple[str, str]:
    """(the text to export, the command name) for a span's ``db.query.text``.

    A text :func:`command_text` wrote comes back as it is. Anything else (contrib's own
    ``find {'status': 'paid'}`` when otel_db's hook did not run) is cut to the command
    name and collection: no value is exported.
    """
    name, _, rest = text.partition(" ")
    if not _COMMAND.fullmatch(name):
        return "?", "?"
    head = name
    if collection and (rest == collection or rest.startswith(collection + " ")):
        head = f"{name} {collection}"
        rest = rest[len(collection) + 1 :]
    if rest.startswith("{") and _is_shape(rest, name):
        return f"{head} {rest}", name
    return head, name


def fingerprint(text: str) -> str:
    """16 hex chars of the shape text (which has no values to normalise)."""
    return hashlib.blake2b(f"{SYSTEM} {text}".encode("utf-8", "replace"), digest_size=8).hexdigest()


def statement_shape(text: str, collection: str | None) -> StatementShape:
    """What the span pipeline records for a MongoDB span's text (see :func:`safe_text`)."""
    safe, name = safe_text(text, collection)
    summary = f"{name} {collection}" if collection else name
    return StatementShape(safe, name, summary, collection, fingerprint(safe))
