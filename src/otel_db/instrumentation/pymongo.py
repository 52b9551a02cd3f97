"""pymongo: contrib's command spans, with value-free command shapes and error facts.

contrib's ``PymongoInstrumentor`` makes one CLIENT span per command from pymongo's
public command monitoring. otel_db passes it three hooks (chained before the
caller's own):

- started: ``db.query.text`` becomes the command's shape (keys and operators, every
  value ``?``: :mod:`otel_db.nosql.mongo_shape`), never contrib's ``str()`` of the
  filter, whatever ``capture_statement`` says; ``db.operation.batch.size`` for inserts,
  updates and deletes of more than one document;
- succeeded: ``db.response.returned_rows`` from the cursor's first batch (what the
  server sent for this command), and the facts of a write error the reply carries
  (``ok: 1`` with ``writeErrors``: pymongo raises ``DuplicateKeyError`` from it, so the
  span is marked failed too);
- failed: ``db.response.status_code`` (the server's error code), ``error.type``
  (contrib's: the code name), ``otel_db.error.category`` and ``otel_db.error.retryable``;
  the status description without the values a server message quotes.

A ``ServerSelectionTimeoutError`` (no server reachable) fails before any command is
sent, and an ``AutoReconnect`` from the pool's checkout (the server went away, a new
connection is refused) too: no command span sees them. The public operations that
reach the server (``Collection.find_one``, ``insert_one``..., cursor iteration,
``Database.command``...) are wrapped, and such a failure becomes a ``connect`` span
(``connection``, retryable), once per operation the application called.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import Span, Status, StatusCode

from otel_db import attributes as attr
from otel_db.enrichers.db_errors import error_attributes
from otel_db.instrumentation.connect_spans import ConnectTarget, record_failed_connect
from otel_db.nosql import mongo_shape
from otel_db.nosql.errors import (
    CONNECTION,
    mongo_error_message,
    mongo_failure_facts,
    mongo_reply_failure,
)
from otel_db.pipeline.containment import FAILURES

_BATCH_FIELDS = {"insert": "documents", "update": "updates", "delete": "deletes"}
_TEXT_KEYS = (attr.DB_QUERY_TEXT, attr.LEGACY_DB_STATEMENT)
#: Marks an exception already turned into a ``connect`` span (nested public calls:
#: ``find_one`` iterates a cursor).
_RECORDED = "_otel_db_connect_recorded"


def _started(span: Span, event: Any) -> None:
    try:
        if not span.is_recording():
            return
        command = event.command
        name = event.command_name
        collection = command.get(name)
        text = mongo_shape.command_text(
            name, collection if isinstance(collection, str) else None, command
        )
        written = getattr(span, "attributes", None) or {}
        updates: dict[str, Any] = {key: text for key in _TEXT_KEYS if key in written} or {
            attr.DB_QUERY_TEXT: text
        }
        updates[attr.DB_OPERATION_NAME] = name
        batch = command.get(_BATCH_FIELDS.get(name, ""))
        if isinstance(batch, list) and len(batch) > 1:
            updates[attr.DB_OPERATION_BATCH_SIZE] = len(batch)
        span.set_attributes(updates)
    except Exception as failure:
        FAILURES.report("pymongo command start", failure)


#: Per thread: how many commands failed on a connection error (read by the operation
#: wrappers: such a failure already has its span).
_commands = threading.local()


def _mark_failed(span: Span, failure: Mapping[str, Any]) -> None:
    facts = mongo_failure_facts(failure)
    if facts.category == CONNECTION:
        _commands.connection_failures = getattr(_commands, "connection_failures", 0) + 1
    span.set_attributes(error_attributes(facts))
    message = mongo_error_message(str(failure.get("errmsg") or facts.error_type))
    span.set_status(Status(StatusCode.ERROR, message or facts.error_type))


def _succeeded(span: Span, event: Any) -> None:
    try:
        if not span.is_recording():
            return
        reply = event.reply
        cursor = reply.get("cursor")
        if isinstance(cursor, Mapping):
            batch = cursor.get("firstBatch")
            if batch is None:
                batch = cursor.get("nextBatch")
            if isinstance(batch, list):
                span.set_attribute(attr.DB_RESPONSE_RETURNED_ROWS, len(batch))
        failure = mongo_reply_failure(reply)
        if failure is not None:
            _mark_failed(span, failure)
    except Exception as failure:
        FAILURES.report("pymongo command success", failure)


def _failed(span: Span, event: Any) -> None:
    try:
        if span.is_recording() and isinstance(event.failure, Mapping):
            _mark_failed(span, event.failure)
    except Exception as failure:
        FAILURES.report("pymongo command failure", failure)


def _chain(ours: Callable[[Span, Any], None], theirs: Any) -> Callable[[Span, Any], None]:
    if not callable(theirs):
        return ours

    def both(span: Span, event: Any) -> None:
        ours(span, event)
        theirs(span, event)

    return both


# --- no server reachable: a connect span ----------------------------------------------

_PUBLIC_OPERATIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "pymongo.collection",
        "Collection",
        (
            "insert_one",
            "insert_many",
            "replace_one",
            "update_one",
            "update_many",
            "delete_one",
            "delete_many",
            "find_one",
            "count_documents",
            "estimated_document_count",
            "distinct",
            "aggregate",
            "bulk_write",
            "find_one_and_delete",
            "find_one_and_replace",
            "find_one_and_update",
            "create_index",
            "create_indexes",
            "drop_index",
            "drop",
        ),
    ),
    ("pymongo.cursor", "Cursor", ("next", "__next__", "to_list")),
    ("pymongo.command_cursor", "CommandCursor", ("next", "__next__", "to_list")),
    (
        "pymongo.database",
        "Database",
        ("command", "list_collection_names", "create_collection", "drop_collection"),
    ),
    ("pymongo.mongo_client", "MongoClient", ("list_database_names", "server_info")),
)


def _target(instance: Any) -> ConnectTarget:
    """Where ``instance`` (client, database, collection or cursor) would connect, read
    from public attributes only (never ``MongoClient.address``: it selects a server)."""
    try:
        if "topology_description" in dir(type(instance)):  # MongoClient
            client, namespace = instance, None
        else:
            collection = instance if hasattr(instance, "full_name") else None
            if collection is None and "collection" in dir(type(instance)):  # Cursor
                collection = instance.collection
            database = collection.database if collection is not None else instance
            client, namespace = database.client, database.name
        servers = list(client.topology_description.server_descriptions())
        host, port = servers[0] if len(servers) == 1 else (None, None)
        return ConnectTarget(mongo_shape.SYSTEM, host, port, namespace)
    except Exception:
        return ConnectTarget(mongo_shape.SYSTEM)


def _make_operation_wrapper(
    connection_failure: type[BaseException], selection_error: type[BaseException]
) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        start = time.time_ns()
        seen = getattr(_commands, "connection_failures", 0)
        try:
            return wrapped(*args, **kwargs)
        except connection_failure as error:
            # No command span saw it: server selection failed, or the pool could not
            # open a connection (pymongo raises AutoReconnect from the checkout).
            if (
                not getattr(error, _RECORDED, False)
                and (
                    isinstance(error, selection_error)
                    or getattr(_commands, "connection_failures", 0) == seen
                )
                and is_instrumentation_enabled()
            ):
                with contextlib.suppress(Exception):
                    setattr(error, _RECORDED, True)
                record_failed_connect(_target(instance), error, start)
            raise

    return wrapper


_wrapped: list[tuple[Any, str]] = []
_lock = threading.Lock()


def _install_operation_wrappers() -> None:
    import importlib

    from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
    from wrapt import wrap_function_wrapper

    wrapper = _make_operation_wrapper(ConnectionFailure, ServerSelectionTimeoutError)
    with _lock:
        if _wrapped:
            return
        for module_name, class_name, methods in _PUBLIC_OPERATIONS:
            try:
                owner = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):
                continue
            for method in methods:
                if method in vars(owner):
                    wrap_function_wrapper(owner, method, wrapper)
                    _wrapped.append((owner, method))


def _remove_operation_wrappers() -> None:
    with _lock:
        for owner, method in reversed(_wrapped):
            unwrap(owner, method)
        _wrapped.clear()


class PymongoStatementInstrumentor(PymongoInstrumentor):
    """contrib's pymongo instrumentor with value-free command shapes and error facts."""

    _instance = None  # BaseInstrumentor's per-class singleton (see RedisStatementInstrumentor)

    def _instrument(self, **kwargs: Any) -> None:
        kwargs["request_hook"] = _chain(_started, kwargs.get("request_hook"))
        kwargs["response_hook"] = _chain(_succeeded, kwargs.get("response_hook"))
        kwargs["failed_hook"] = _chain(_failed, kwargs.get("failed_hook"))
        # The shape replaces the statement; contrib's rendering would carry the values.
        kwargs["capture_statement"] = False
        super()._instrument(**kwargs)
        _install_operation_wrappers()

    def _uninstrument(self, **kwargs: Any) -> None:
        _remove_operation_wrappers()
        super()._uninstrument(**kwargs)


__all__ = ["PymongoStatementInstrumentor"]
