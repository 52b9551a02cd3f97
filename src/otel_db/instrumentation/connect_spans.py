"""A CLIENT span named ``connect`` for every failed connection attempt.

Refused, timed out, bad credentials, unknown database: the application gets the
driver's exception as always, and the trace gets one ``connect`` span per attempt with
``db.system.name``, ``server.address``, ``server.port``, ``db.namespace``,
``error.type``, ``otel_db.error.category`` (``connection`` or ``authentication``) and
``otel_db.error.retryable``. A successful connect makes no span (pool attributes carry
its wait). SQLAlchemy engines are covered through their driver's ``connect``, which the
dialect looks up on the driver module at each attempt.

Only public entry points are wrapped: ``psycopg2.connect``, ``asyncpg.connect`` (and
``asyncpg.connection.connect``, which pools call), ``pymysql.connections.Connection.connect``
(also used by ``ping(reconnect=True)``), ``sqlite3.connect``, pg8000's ``CoreConnection`` (every
pg8000 interface connects there), ``mysql.connector.connect`` and redis-py's
``connect_check_health`` (one call per attempt of its retry loop; ``connect`` on
redis-py versions without it), sync and asyncio.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.instrumentation.connect_failures import connect_failure_facts
from otel_db.pipeline.containment import FAILURES
from otel_db.version import __version__

_logger = logging.getLogger(__name__)

SPAN_NAME = "connect"


_Args = tuple[Any, ...]
_Kwargs = Mapping[str, Any]


@dataclass(frozen=True)
class ConnectTarget:
    """Where an attempt tried to connect."""

    system: str
    address: str | None = None
    port: int | None = None
    namespace: str | None = None

    def attributes(self) -> dict[str, AttributeValue]:
        out: dict[str, AttributeValue] = {attr.DB_SYSTEM_NAME: self.system}
        if self.address:
            out[attr.SERVER_ADDRESS] = self.address
        if self.port:
            out[attr.SERVER_PORT] = self.port
        if self.namespace:
            out[attr.DB_NAMESPACE] = self.namespace
        return out


def _port(value: object, default: int | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value) if value not in (None, "") else None


def record_failed_connect(target: ConnectTarget, error: BaseException, start_ns: int) -> None:
    """Emit the ``connect`` span of an attempt that raised ``error``. Never raises."""
    try:
        facts = connect_failure_facts(error)
        attributes = target.attributes()
        attributes[attr.ERROR_TYPE] = facts.error_type
        attributes[attr.ERROR_CATEGORY] = facts.category
        attributes[attr.ERROR_RETRYABLE] = facts.retryable
        if facts.status_code:
            attributes[attr.DB_RESPONSE_STATUS_CODE] = facts.status_code
        tracer = trace.get_tracer(__name__, __version__)
        span = tracer.start_span(
            SPAN_NAME, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
        )
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
    except Exception as failure:
        FAILURES.report("connect span", failure)


def _safe_target(
    locate: Callable[[Any, tuple[Any, ...], Mapping[str, Any]], ConnectTarget],
    system: str,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> ConnectTarget:
    try:
        return locate(instance, args, kwargs)
    except Exception:
        return ConnectTarget(system)


def _sync_wrapper(system: str, locate: Callable[..., ConnectTarget]) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        start = time.time_ns()
        try:
            return wrapped(*args, **kwargs)
        except Exception as error:
            record_failed_connect(
                _safe_target(locate, system, instance, args, kwargs), error, start
            )
            raise

    return wrapper


def _async_wrapper(system: str, locate: Callable[..., ConnectTarget]) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)

        async def attempt() -> Any:
            start = time.time_ns()
            try:
                return await wrapped(*args, **kwargs)
            except Exception as error:
                record_failed_connect(
                    _safe_target(locate, system, instance, args, kwargs), error, start
                )
                raise

        return attempt()

    return wrapper


# --- where each driver tried to connect ---------------------------------------------


def _postgres_url(dsn: str) -> dict[str, Any]:
    parts = urlsplit(dsn)
    return {
        "host": unquote(parts.hostname or "") or None,
        "port": parts.port,
        "dbname": unquote(parts.path.lstrip("/")) or None,
    }


def _psycopg2_target(
    instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> ConnectTarget:
    dsn = args[0] if args else kwargs.get("dsn")
    params: dict[str, Any] = {}
    if isinstance(dsn, str) and dsn:
        from psycopg2.extensions import parse_dsn

        params.update(parse_dsn(dsn))
    params.update({k: v for k, v in kwargs.items() if v is not None})
    return ConnectTarget(
        "postgresql",
        _text(params.get("host") or params.get("hostaddr")),
        _port(params.get("port"), 5432),
        _text(params.get("dbname") or params.get("database") or params.get("user")),
    )


def _asyncpg_target(
    instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> ConnectTarget:
    dsn = args[0] if args else kwargs.get("dsn")
    params: dict[str, Any] = _postgres_url(dsn) if isinstance(dsn, str) and dsn else {}
    for key, name in (("host", "host"), ("port", "port"), ("database", "dbname")):
        if kwargs.get(key) is not None:
            params[name] = kwargs[key]
    host = params.get("host")
    if isinstance(host, (list, tuple)):
        host = ",".join(map(str, host))
    return ConnectTarget(
        "postgresql",
        _text(host),
        _port(params.get("port"), 5432),
        _text(params.get("dbname") or kwargs.get("user")),
    )


def _pymysql_target(
    instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> ConnectTarget:
    return ConnectTarget(
        "mysql",
        _text(getattr(instance, "host", None)),
        _port(getattr(instance, "port", None), 3306),
        _text(getattr(instance, "db", None)),
    )


def _mysql_connector_target(
    instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> ConnectTarget:
    return ConnectTarget(
        "mysql",
        _text(kwargs.get("host") or "127.0.0.1"),
        _port(kwargs.get("port"), 3306),
        _text(kwargs.get("database") or kwargs.get("db")),
    )


def _sqlite3_target(
    instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> ConnectTarget:
    database = args[0] if args else kwargs.get("database")
    try:
        name = os.fsdecode(database) if database is not None else None
    except TypeError:
        name = None
    return ConnectTarget("sqlite", None, None, name)


def _pg8000_target(
    instance: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> ConnectTarget:
    # CoreConnection(user, host="localhost", database=None, port=5432, ...)
    named = dict(zip(("user", "host", "database", "port"), args, strict=False))
    named.update(kwargs)
    socket_path = named.get("unix_sock")
    return ConnectTarget(
        "postgresql",
        _text(socket_path or named.get("host") or "localhost"),
        None if socket_path else _port(named.get("port"), 5432),
        _text(named.get("database") or named.get("user")),
    )


def _redis_target(instance: Any, args: _Args, kwargs: _Kwargs) -> ConnectTarget:
    path = getattr(instance, "path", None)
    if path:
        return ConnectTarget("redis", _text(path), None, str(getattr(instance, "db", 0)))
    return ConnectTarget(
        "redis",
        _text(getattr(instance, "host", None)) or "localhost",
        _port(getattr(instance, "port", None), 6379),
        str(getattr(instance, "db", 0)),
    )


# --- wrapping -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    module: str
    owner: str  # "" for a module function, else the class name
    name: str
    system: str
    locate: Callable[..., ConnectTarget]


def _redis_entry(module: str) -> _Entry:
    return _Entry(module, "", "", "redis", _redis_target)  # owner/name found at import


_ENTRIES: tuple[_Entry, ...] = (
    _Entry("psycopg2", "", "connect", "postgresql", _psycopg2_target),
    _Entry("asyncpg", "", "connect", "postgresql", _asyncpg_target),
    _Entry("asyncpg.connection", "", "connect", "postgresql", _asyncpg_target),
    _Entry("pymysql.connections", "Connection", "connect", "mysql", _pymysql_target),
    _Entry("sqlite3", "", "connect", "sqlite", _sqlite3_target),
    _Entry("sqlite3.dbapi2", "", "connect", "sqlite", _sqlite3_target),
    # Every pg8000 interface (legacy, dbapi, native) connects in CoreConnection.
    _Entry("pg8000.core", "CoreConnection", "__init__", "postgresql", _pg8000_target),
    _Entry("mysql.connector", "", "connect", "mysql", _mysql_connector_target),
    _redis_entry("redis.connection"),
    _redis_entry("redis.asyncio.connection"),
)


def _resolve(entry: _Entry, module: Any) -> tuple[Any, str]:
    if entry.system == "redis" and not entry.name:
        owner_name = "AbstractConnection" if hasattr(module, "AbstractConnection") else "Connection"
        owner = getattr(module, owner_name)
        name = "connect_check_health" if hasattr(owner, "connect_check_health") else "connect"
        return owner, name
    return (getattr(module, entry.owner) if entry.owner else module), entry.name


class ConnectSpanInstrumentor(BaseInstrumentor):
    """Wraps the connect entry points of every driver, as each driver module is imported
    (no driver is imported on otel_db's account)."""

    _applied: list[tuple[Any, str, Any]] = []
    _active = False
    _hooked = False

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        ConnectSpanInstrumentor._active = True
        hooked = ConnectSpanInstrumentor._hooked
        ConnectSpanInstrumentor._hooked = True
        for entry in _ENTRIES:
            if not hooked:
                # Runs now when the module is already imported, else right after its
                # import (and stays registered: it checks _active each time).
                hook = functools.partial(_wrap_entry, entry)
                wrapt.register_post_import_hook(hook, entry.module)
            elif entry.module in sys.modules:  # instrumented again after uninstrument
                _wrap_entry(entry, sys.modules[entry.module])

    def _uninstrument(self, **kwargs: Any) -> None:
        ConnectSpanInstrumentor._active = False
        applied = ConnectSpanInstrumentor._applied
        while applied:
            owner, name, wrapper = applied.pop()
            # Only our own wrapper is removed: another one applied since stays in place.
            if inspect.getattr_static(owner, name, None) is wrapper:
                setattr(owner, name, wrapper.__wrapped__)


def _applied_list() -> list[tuple[Any, str, Any]]:
    return ConnectSpanInstrumentor._applied


def _wrap_entry(entry: _Entry, module: Any) -> None:
    if not ConnectSpanInstrumentor._active:
        return
    try:
        owner, name = _resolve(entry, module)
        original = inspect.getattr_static(owner, name)
        if any(o is owner and n == name and w is original for o, n, w in _applied_list()):
            return  # already ours
        function = getattr(original, "__func__", original)
        make = (
            _async_wrapper
            if inspect.iscoroutinefunction(getattr(function, "__wrapped__", function))
            or inspect.iscoroutinefunction(function)
            else _sync_wrapper
        )
        wrapt.wrap_function_wrapper(owner, name, make(entry.system, entry.locate))
        ConnectSpanInstrumentor._applied.append((owner, name, inspect.getattr_static(owner, name)))
    except Exception as error:
        _logger.debug("otel_db: connect spans not set up for %s: %s", entry.module, error)
