"""redis-py with pool facts, MULTI/EXEC transactions and operation durations.

contrib's statement spans are kept as they are. otel_db wraps around them:

- ``Pipeline.execute`` (sync and asyncio), wrapped *before* contrib's (so inside
  contrib's span): the pipeline span's ``db.operation.batch.size`` and, for MULTI/EXEC,
  its transaction id, outcome and statement count, set before it ends
  (``transactions/redis_transactions.py``; no transaction span of its own);
- ``execute_command`` / ``immediate_execute_command``: which connection a statement runs
  on when the client or pipeline already holds one (pool facts for ``WATCH`` pipelines
  and ``single_connection_client``); other statements get theirs from the checkout
  (``pools/redis_pool.py``);
- all three: ``db.client.operation.duration`` (contrib's redis instrumentation records
  no metrics).

The other wrappers are applied after contrib's, so they run outside contrib's span.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from opentelemetry.context import attach as _attach
from opentelemetry.context import detach as _detach
from opentelemetry.context import get_current as _get_current
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.utils import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS
from opentelemetry.instrumentation.utils import (
    _SUPPRESS_INSTRUMENTATION_KEY_PLAIN as _SUPPRESS_PLAIN,
)
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otel_db import attributes as attr
from otel_db.compat.verified import shortcut
from otel_db.instrumentation.redis_command_span import command_template
from otel_db.metrics.instruments import recorders
from otel_db.pipeline.containment import FAILURES
from otel_db.pools import redis_pool
from otel_db.settings import current_settings
from otel_db.transactions import redis_transactions
from otel_db.transactions.statement_site import CURRENT_SITE, StatementSite

_CLIENT = SpanKind.CLIENT
_wrapped: list[tuple[Any, str]] = []
_inner_wrapped: list[tuple[Any, str]] = []
_lock = threading.Lock()


def _system_attributes(client: Any) -> dict[str, Any]:
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None) or {}
    out: dict[str, Any] = {
        attr.DB_SYSTEM_NAME: "redis",
        attr.DB_NAMESPACE: str(kwargs.get("db", 0)),
    }
    if kwargs.get("path"):
        out[attr.SERVER_ADDRESS] = kwargs["path"]
    else:
        out[attr.SERVER_ADDRESS] = kwargs.get("host") or "localhost"
        out[attr.SERVER_PORT] = int(kwargs.get("port") or 6379)
    return out


def _shared_system_attributes(client: Any) -> dict[str, Any]:
    """:func:`_system_attributes`, built once per pool (shared: never mutate)."""
    pool = getattr(client, "connection_pool", None)
    state = redis_pool.pool_state(pool) if pool is not None else None
    if state is None:
        return _system_attributes(client)
    found = state.system_attributes
    if found is None:
        found = state.system_attributes = _system_attributes(client)
    return found


_MAX_OPERATIONS_PER_POOL = 256
_perf_counter = time.perf_counter


def _operation_attributes(client: Any, operation: Any) -> tuple[dict[str, Any], bool]:
    """The duration's attributes (without ``error.type``), and whether they are the
    pool's shared dict for this command (built once per pool and command, never
    mutated: recordable through the shared-attributes histograms)."""
    pool = getattr(client, "connection_pool", None)
    by_operation = None
    if pool is not None:
        state = getattr(pool, redis_pool.STATE_ATTRIBUTE, None)
        if state is None or state.pool_ref() is not pool:
            state = redis_pool.pool_state(pool)
        if state is not None:
            by_operation = state.operations
            try:
                found = by_operation.get(operation)
            except TypeError:  # an unhashable command name: built every time
                found = by_operation = None
            if found is not None:
                return found, True
    attributes = dict(_shared_system_attributes(client))
    name = operation.decode("utf-8", "replace") if isinstance(operation, bytes) else operation
    if name:
        attributes[attr.DB_OPERATION_NAME] = str(name).upper()
    if (
        by_operation is not None
        and isinstance(operation, (str, bytes))
        and len(by_operation) < _MAX_OPERATIONS_PER_POOL
    ):
        by_operation[operation] = attributes
        return attributes, True
    return attributes, False


def _record_duration(
    client: Any, operation: Any, started: float | None, error: BaseException | None
) -> None:
    """Record the duration of what started at ``started`` (None: nothing to record, the
    process exports no metrics)."""
    if started is None:
        return
    try:
        elapsed = _perf_counter() - started
        attributes, shared = _operation_attributes(client, operation)
        if error is not None:
            attributes = {**attributes, attr.ERROR_TYPE: type(error).__qualname__}
            shared = False
        for recorder in recorders():
            if shared:
                recorder.operation_duration_shared.record(elapsed, attributes)
            else:
                recorder.operation_duration.record(elapsed, attributes)
    except Exception as failure:
        FAILURES.report("redis operation duration", failure)


def _site_token(connection: Any) -> Any:
    """Make ``connection`` (held across statements) the statement site of what starts."""
    try:
        redis_pool.hold(connection)  # its checkout facts, for the statement's start
        return CURRENT_SITE.set(StatementSite(connection, None))
    except Exception as failure:
        FAILURES.report("redis statement site", failure)
        return None


def _reset(token: Any) -> None:
    if token is not None:
        try:
            CURRENT_SITE.reset(token)
        except Exception as failure:  # another context (should not happen)
            FAILURES.report("redis statement site reset", failure)


def _pipeline_start(pipeline: Any) -> tuple[Any, str]:
    """(statement-site token, operation name) for ``Pipeline.execute``."""
    operation = "PIPELINE"
    try:
        if redis_transactions.is_transaction(pipeline):
            operation = "MULTI"
    except Exception as failure:
        FAILURES.report("redis pipeline start", failure)
    # Only a held connection (after WATCH) is known before the pipeline's own checkout.
    connection = getattr(pipeline, "connection", None)
    site = _site_token(connection) if connection is not None else None
    return site, operation


# Around ``Pipeline.execute``: its site, its duration. Written out rather than as a
# generator context manager: this runs for every pipeline.
def _execute(wrapped: Any, pipeline: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    current = _get_current()  # is_instrumentation_enabled(), read from one context
    if current.get(_SUPPRESS) or current.get(_SUPPRESS_PLAIN):
        return wrapped(*args, **kwargs)
    site, operation = _pipeline_start(pipeline)
    started = _perf_counter() if recorders() else None  # no metrics: no clock
    error: BaseException | None = None
    try:
        return wrapped(*args, **kwargs)
    except BaseException as raised:
        error = raised
        raise
    finally:
        if site is not None:
            _reset(site)
        _record_duration(pipeline, operation, started, error)


async def _async_execute(
    wrapped: Any, pipeline: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    current = _get_current()
    if current.get(_SUPPRESS) or current.get(_SUPPRESS_PLAIN):
        return await wrapped(*args, **kwargs)
    site, operation = _pipeline_start(pipeline)
    started = _perf_counter() if recorders() else None  # no metrics: no clock
    error: BaseException | None = None
    try:
        return await wrapped(*args, **kwargs)
    except BaseException as raised:
        error = raised
        raise
    finally:
        if site is not None:
            _reset(site)
        _record_duration(pipeline, operation, started, error)


def _pipeline_shape(pipeline: Any) -> tuple[int, bool]:
    """(commands queued, whether MULTI/EXEC transaction facts are to be written), read
    before ``execute()`` empties the pipeline."""
    stack = getattr(pipeline, "command_stack", None)
    commands = len(stack) if stack is not None else 0
    transaction = commands > 0 or getattr(pipeline, "watching", False)
    if transaction:
        transaction = (
            getattr(pipeline, "transaction", False)
            or getattr(pipeline, "explicit_transaction", False)
        ) and current_settings().transaction_spans
    return commands, bool(transaction)


# Inside contrib's pipeline span (installed before contrib's wrapper): the pipeline span
# gets its batch size and transaction facts before it ends, so it is never held.
def _inner_execute(
    wrapped: Any, pipeline: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    commands, transaction = _pipeline_shape(pipeline)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as error:
        redis_transactions.pipeline_ended(commands, transaction, error)
        raise
    redis_transactions.pipeline_ended(commands, transaction, None)
    return result


async def _async_inner_execute(
    wrapped: Any, pipeline: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    commands, transaction = _pipeline_shape(pipeline)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as error:
        redis_transactions.pipeline_ended(commands, transaction, error)
        raise
    redis_transactions.pipeline_ended(commands, transaction, None)
    return result


def _command(wrapped: Any, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Around one command: its site (which held connection, if any) and its duration.

    Written out rather than as a context manager: this runs for every redis command.
    """
    current = _get_current()  # is_instrumentation_enabled(), read from one context
    if current.get(_SUPPRESS) or current.get(_SUPPRESS_PLAIN):
        return wrapped(*args, **kwargs)
    connection = getattr(client, "connection", None)
    token = _site_token(connection) if connection is not None else None
    started = _perf_counter() if recorders() else None  # no metrics: no clock
    error: BaseException | None = None
    try:
        return wrapped(*args, **kwargs)
    except BaseException as raised:
        error = raised
        raise
    finally:
        if token is not None:
            _reset(token)
        _record_duration(client, args[0] if args else None, started, error)


def _lean_command_factory(tracer: Any, contrib_command: Any) -> Any:
    """``Redis.execute_command``'s one wrapper: contrib's span (from
    :mod:`otel_db.instrumentation.redis_command_span`, else contrib's own wrapper) with
    :func:`_command`'s site and duration around it."""

    def contrib_span(wrapped: Any, client: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            return contrib_command(wrapped, client, args, kwargs)

        return run

    def lean_command(
        wrapped: Any, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        current = _get_current()  # is_instrumentation_enabled(), read from one context
        if current.get(_SUPPRESS) or current.get(_SUPPRESS_PLAIN):
            return wrapped(*args, **kwargs)
        try:
            template = command_template(client, args)
        except Exception as failure:  # contrib's wrapper then
            FAILURES.report("redis command span", failure)
            template = None
        if template is None:
            return _command(contrib_span(wrapped, client), client, args, kwargs)
        connection = getattr(client, "connection", None)
        token = _site_token(connection) if connection is not None else None
        started = _perf_counter() if recorders() else None  # no metrics: no clock
        error: BaseException | None = None
        try:
            span = tracer.start_span(template[0], kind=_CLIENT, attributes=template[1])
            context_token = _attach(set_span_in_context(span))
            try:
                return wrapped(*args, **kwargs)
            except Exception as raised:  # as the SDK's use_span does for contrib's span
                if span.is_recording():
                    span.record_exception(raised)
                    span.set_status(Status(StatusCode.ERROR, f"{type(raised).__name__}: {raised}"))
                raise
            finally:
                _detach(context_token)
                span.end()
        except BaseException as raised:
            error = raised
            raise
        finally:
            if token is not None:
                _reset(token)
            _record_duration(client, args[0] if args else None, started, error)

    return lean_command


async def _async_command(
    wrapped: Any, client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    current = _get_current()  # is_instrumentation_enabled(), read from one context
    if current.get(_SUPPRESS) or current.get(_SUPPRESS_PLAIN):
        return await wrapped(*args, **kwargs)
    connection = getattr(client, "connection", None)
    token = _site_token(connection) if connection is not None else None
    started = _perf_counter() if recorders() else None  # no metrics: no clock
    error: BaseException | None = None
    try:
        return await wrapped(*args, **kwargs)
    except BaseException as raised:
        error = raised
        raise
    finally:
        if token is not None:
            _reset(token)
        _record_duration(client, args[0] if args else None, started, error)


_OUTER_TARGETS = [
    ("redis.client", "Redis.execute_command", _command),
    ("redis.client", "Pipeline.execute", _execute),
    ("redis.client", "Pipeline.immediate_execute_command", _command),
    ("redis.asyncio.client", "Redis.execute_command", _async_command),
    ("redis.asyncio.client", "Pipeline.execute", _async_execute),
    ("redis.asyncio.client", "Pipeline.immediate_execute_command", _async_command),
]
_INNER_TARGETS = [
    ("redis.client", "Pipeline.execute", _inner_execute),
    ("redis.asyncio.client", "Pipeline.execute", _async_inner_execute),
]


def _wrap(targets: list[tuple[str, str, Any]], done: list[tuple[Any, str]]) -> None:
    import importlib

    from wrapt import wrap_function_wrapper

    with _lock:
        if done:
            return
        for module_name, target, wrapper in targets:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            cls_name, method = target.split(".")
            wrap_function_wrapper(module, target, wrapper)
            done.append((getattr(module, cls_name), method))


def _unwrap(done: list[tuple[Any, str]]) -> None:
    with _lock:
        for owner, method in reversed(done):
            unwrap(owner, method)
        done.clear()


def _install_wrappers(lean_command: Any = None) -> None:
    """otel_db's outer wrappers; ``lean_command``: ``Redis.execute_command``'s whole
    wrapper (contrib's span included), in place of :func:`_command` there."""
    targets = _OUTER_TARGETS
    if lean_command is not None:
        targets = [
            (module, target, lean_command if target == "Redis.execute_command" else wrapper)
            if module == "redis.client"
            else (module, target, wrapper)
            for module, target, wrapper in targets
        ]
    _wrap(targets, _wrapped)


def _remove_wrappers() -> None:
    _unwrap(_wrapped)


class RedisStatementInstrumentor(RedisInstrumentor):
    """contrib's redis instrumentor plus pool facts, pipeline facts, durations."""

    # BaseInstrumentor is a per-class singleton looked up through the MRO: without this,
    # an earlier RedisInstrumentor() would be returned for this class too.
    _instance = None

    def _instrument(self, **kwargs: Any) -> None:
        _wrap(_INNER_TARGETS, _inner_wrapped)  # before contrib's: inside contrib's span
        try:
            super()._instrument(**kwargs)
        except BaseException:
            _unwrap(_inner_wrapped)
            raise
        lean = self._lean_command(**kwargs)
        _install_wrappers(lean)  # after contrib's: outermost, around contrib's span
        if current_settings().pool_attributes:
            redis_pool.install()

    def _lean_command(self, **kwargs: Any) -> Any:
        """The lean ``Redis.execute_command`` wrapper, in place of contrib's (unwrapped
        here), or None where contrib's wrapper stays (see redis_command_span.py)."""
        if (
            not shortcut("contrib.redis")
            or kwargs.get("request_hook")
            or kwargs.get("response_hook")
        ):
            return None
        try:
            import redis
            from opentelemetry.instrumentation import redis as contrib_redis

            if not hasattr(redis.Redis.execute_command, "__wrapped__"):
                return None  # contrib did not wrap it (another redis-py generation)
            tracer = self._get_tracer(**kwargs)
            contrib_command = contrib_redis._traced_execute_factory(tracer, None, None)
            lean = _lean_command_factory(tracer, contrib_command)
            unwrap(redis.Redis, "execute_command")  # contrib's, replaced by ``lean``
            return lean
        except Exception as failure:  # contrib's wrapper stays
            FAILURES.report("redis lean command span", failure)
            return None

    def _uninstrument(self, **kwargs: Any) -> None:
        _remove_wrappers()  # outermost first, then contrib's, then the innermost
        super()._uninstrument(**kwargs)
        _unwrap(_inner_wrapped)
        redis_pool.uninstall()


__all__ = ["RedisStatementInstrumentor"]
