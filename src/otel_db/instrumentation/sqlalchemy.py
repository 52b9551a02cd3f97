"""One span per SQLAlchemy statement, on every engine, for SQLAlchemy 1.4 to 2.1.

Listeners sit on the ``Engine`` class, so every engine is covered, sync or async (an
async engine runs its statements on its ``sync_engine``), whenever it was created and
however ``create_engine`` was imported: no engine can be traced twice. While the driver
runs the statement, the span is current and driver-level instrumentation is suppressed,
so an instrumented driver underneath (psycopg2, sqlite3, asyncpg, ...) adds no second
span; the facts the driver span would have carried are read here instead.

That context is detached when the statement ends, on every path: ``after_cursor_execute``
on success; on failure, a wrapper on ``Connection._handle_dbapi_exception`` (every error
of a statement passes there, including those SQLAlchemy hides from ``handle_error`` with
the ``skip_user_error_events`` option its MySQL dialect uses for reflection). That name
is private: it is wrapped only on the SQLAlchemy series it was checked on, with its
signature checked too; elsewhere ``handle_error`` (public) ends the statement, as it
did before.
"""

from __future__ import annotations

import inspect
import logging
import sys
import time
from collections.abc import Collection
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Status, StatusCode

from otel_db import attributes as attr
from otel_db.instrumentation import library_statements
from otel_db.instrumentation.semconv import DatabaseAttributeWriter
from otel_db.instrumentation.sqlalchemy_engine_facts import EngineFacts, facts_for
from otel_db.instrumentation.statement_hooks import StatementHooks, default_hooks
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.span_start import SpanStarter
from otel_db.settings import current_settings
from otel_db.version import __version__

_logger = logging.getLogger(__name__)

_SUPPRESS_KEY = context_api._SUPPRESS_INSTRUMENTATION_KEY
_STATE = "_otel_db_statement"
_MAX_UNCONTEXTED = 1024
# Span name and base attributes remembered per statement text: SQLAlchemy hands over
# the same compiled string every time a statement runs, so this saves re-deriving them
# (two operation scans and five semconv writes) per execution. Bounded in entries and
# in the length of the texts kept.
_MAX_TEMPLATES = 512
_MAX_TEMPLATE_STATEMENT_CHARS = 4096
#: SQLAlchemy series whose ``Connection._handle_dbapi_exception(self, e, statement,
#: parameters, cursor, context, ...)`` was checked: every failed statement passes there.
ERROR_PATH_SERIES = ("1.4.", "2.0.", "2.1.")
_ERROR_PATH_PARAMETERS = ["self", "e", "statement", "parameters", "cursor", "context"]


def _operation(statement: str) -> str | None:
    for token in statement.split(None, 8):
        if token.startswith(("/*", "--")) or not token[0].isalpha():
            continue
        return token.upper()
    return None


def _name(hook: object) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__name__


class _Template:
    __slots__ = ("attributes", "facts", "longest", "name")

    def __init__(
        self, facts: EngineFacts, name: str, attributes: dict[str, Any], longest: int | None
    ) -> None:
        self.facts = facts
        self.name = name
        self.attributes = attributes
        #: SpanStarter.check(attributes): spans start without the SDK's cleaning pass.
        self.longest = longest


class _StatementState:
    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self.span = span
        self.token = token


class StatementListener:
    """The SQLAlchemy event listeners. They never raise into the application."""

    def __init__(
        self,
        tracer: trace.Tracer,
        writer: DatabaseAttributeWriter,
        hooks: StatementHooks | None = None,
    ) -> None:
        self._tracer = tracer
        self._starter = SpanStarter(tracer)
        self._writer = writer
        self._hooks = hooks or StatementHooks()
        # Statements SQLAlchemy runs without an execution context (dialect start-up
        # queries) keep their state here, keyed by cursor, until they finish.
        self._uncontexted: dict[int, _StatementState] = {}
        self._templates: dict[str, _Template] = {}

    def before_cursor_execute(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> tuple[str, Any]:
        if not is_instrumentation_enabled():
            return statement, parameters
        try:
            facts = facts_for(conn.engine, cursor)
            template = self._template(statement, facts)
            attributes = dict(template.attributes)
            if executemany and isinstance(parameters, (list, tuple)) and len(parameters) > 1:
                attributes[attr.DB_OPERATION_BATCH_SIZE] = len(parameters)
            parent = self._hooks.parent(conn) if self._hooks.parent is not None else None
            span = self._starter.start(
                template.name,
                trace.set_span_in_context(parent) if parent is not None else None,
                attributes,
                template.longest,
            )
            for hook in self._hooks.on_start:
                try:
                    hook(span, conn, context, statement, parameters)
                except Exception as error:
                    FAILURES.report(f"statement start hook {_name(hook)}", error)
            for rewrite in self._hooks.rewriters:
                try:
                    statement = rewrite(span, conn, statement, parameters)
                except Exception as error:
                    FAILURES.report(f"statement rewriter {_name(rewrite)}", error)
            ctx = context_api.set_value(_SUPPRESS_KEY, True, trace.set_span_in_context(span))
            state = _StatementState(span, context_api.attach(ctx))
            if context is not None:
                setattr(context, _STATE, state)
            elif len(self._uncontexted) < _MAX_UNCONTEXTED:
                self._uncontexted[id(cursor)] = state
            else:
                self._finish(state, None)
        except Exception as error:
            FAILURES.report("SQLAlchemy statement start", error)
        return statement, parameters

    def after_cursor_execute(
        self,
        conn: Any,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        try:
            state = self._take(context, cursor)
            if state is not None:
                end_time = time.time_ns()
                for hook in self._hooks.on_end:
                    try:
                        hook(state.span, conn, cursor, context, statement, parameters, end_time)
                    except Exception as error:
                        FAILURES.report(f"statement end hook {_name(hook)}", error)
                self._finish(state, None, end_time)
        except Exception as error:
            FAILURES.report("SQLAlchemy statement end", error)

    def handle_error(self, exception_context: Any) -> None:
        # An exception raised here would replace the application's own: contain all.
        try:
            state = self._take(
                getattr(exception_context, "execution_context", None),
                getattr(exception_context, "cursor", None),
            )
            if state is not None:
                self._finish(state, getattr(exception_context, "original_exception", None))
        except Exception as error:
            FAILURES.report("SQLAlchemy statement error", error)

    def dbapi_exception(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Wraps ``Connection._handle_dbapi_exception``: the statement ends (and its
        context is detached) before SQLAlchemy handles the error, whether or not it then
        runs the ``handle_error`` listeners."""
        try:
            if len(args) >= 5:
                state = self._take(args[4], args[3])
                if state is not None:
                    self._finish(state, args[0])
        except Exception as error:
            FAILURES.report("SQLAlchemy statement error", error)
        return wrapped(*args, **kwargs)

    def _take(self, context: Any, cursor: Any) -> _StatementState | None:
        if context is not None:
            state = getattr(context, _STATE, None)
            if state is not None:
                setattr(context, _STATE, None)
            return state
        return self._uncontexted.pop(id(cursor), None)

    def _finish(
        self, state: _StatementState, error: BaseException | None, end_time: int | None = None
    ) -> None:
        try:
            context_api.detach(state.token)
        except Exception as detach_error:
            FAILURES.report("SQLAlchemy statement context detach", detach_error)
        span = state.span
        try:
            if error is not None and span.is_recording():
                error_type = f"{type(error).__module__}.{type(error).__qualname__}"
                span.set_attribute(attr.ERROR_TYPE, error_type)
                span.record_exception(error)
                # The message can quote values from the statement: only the type here.
                span.set_status(Status(StatusCode.ERROR, error_type))
                for hook in self._hooks.on_error:
                    try:
                        hook(span, error)
                    except Exception as hook_error:
                        FAILURES.report(f"statement error hook {_name(hook)}", hook_error)
        except Exception as record_error:
            FAILURES.report("SQLAlchemy statement error recording", record_error)
        finally:
            span.end(end_time)

    def _template(self, statement: str, facts: EngineFacts) -> _Template:
        templates = self._templates
        found = templates.get(statement)
        if found is not None and found.facts is facts:
            return found
        attributes = self._attributes(statement, None, False, facts)
        found = _Template(
            facts, self._span_name(statement, facts), attributes, SpanStarter.check(attributes)
        )
        if len(statement) <= _MAX_TEMPLATE_STATEMENT_CHARS:
            if len(templates) >= _MAX_TEMPLATES:
                templates.clear()  # simple and bounded: the working set refills at once
            templates[statement] = found
        return found

    def _span_name(self, statement: str, facts: EngineFacts) -> str:
        operation = _operation(statement)
        target = facts.namespace or facts.system
        return f"{operation} {target}" if operation else target

    def _attributes(
        self, statement: str, parameters: Any, executemany: bool, facts: EngineFacts
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        writer = self._writer
        writer.system(out, facts.system)
        writer.namespace(out, facts.namespace)
        writer.statement(out, statement)
        writer.operation(out, _operation(statement))
        writer.server(out, facts.host, facts.port)
        if executemany and isinstance(parameters, (list, tuple)) and len(parameters) > 1:
            out[attr.DB_OPERATION_BATCH_SIZE] = len(parameters)
        return out


class SQLAlchemyStatementInstrumentor(BaseInstrumentor):
    """Instruments every SQLAlchemy engine in the process (1.4, 2.0 and 2.1)."""

    _listener: StatementListener | None = None
    _error_path_wrapped = False
    _pending: object | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("sqlalchemy >= 1.4, < 2.2",)

    def _instrument(self, **kwargs: Any) -> None:
        """Listen now if SQLAlchemy is imported, else when the application imports it.

        Importing SQLAlchemy at start-up would change what the application sees (a
        fresh interpreter with ``sqlalchemy`` already in ``sys.modules``, and its import
        time); a post-import hook installs the listeners right after the application's
        own ``import sqlalchemy``, before it can create an engine.
        """
        type(self)._pending = None
        if "sqlalchemy" in sys.modules:
            self._install(**kwargs)
            return
        from wrapt import register_post_import_hook

        pending = object()
        type(self)._pending = pending

        def on_import(_module: Any) -> None:
            if type(self)._pending is pending:  # not uninstrumented meanwhile
                type(self)._pending = None
                try:
                    self._install(**kwargs)
                except Exception as error:
                    FAILURES.report("SQLAlchemy instrumentation", error)

        register_post_import_hook(on_import, "sqlalchemy")

    def _install(self, **kwargs: Any) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        writer = DatabaseAttributeWriter()
        tracer = trace.get_tracer(
            __name__, __version__, kwargs.get("tracer_provider"), schema_url=writer.schema_url
        )
        hooks = kwargs.get("hooks") or default_hooks(current_settings())
        listener = StatementListener(tracer, writer, hooks)
        event.listen(Engine, "before_cursor_execute", listener.before_cursor_execute, retval=True)
        event.listen(Engine, "after_cursor_execute", listener.after_cursor_execute)
        event.listen(Engine, "handle_error", listener.handle_error)
        library_statements.install()  # pool pings, dialect start-up: marked, not counted
        type(self)._listener = listener
        type(self)._error_path_wrapped = _wrap_error_path(listener)

    def _uninstrument(self, **kwargs: Any) -> None:
        type(self)._pending = None
        if type(self)._listener is None:
            return
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        listener = type(self)._listener
        if listener is None:
            return
        event.remove(Engine, "before_cursor_execute", listener.before_cursor_execute)
        event.remove(Engine, "after_cursor_execute", listener.after_cursor_execute)
        event.remove(Engine, "handle_error", listener.handle_error)
        library_statements.uninstall()
        if type(self)._error_path_wrapped:
            _unwrap_error_path()
            type(self)._error_path_wrapped = False
        type(self)._listener = None


def _error_path_checked() -> bool:
    """Whether this SQLAlchemy's ``Connection._handle_dbapi_exception`` is the one checked."""
    import sqlalchemy
    from sqlalchemy.engine import Connection

    if not sqlalchemy.__version__.startswith(ERROR_PATH_SERIES):
        return False
    method = Connection.__dict__.get("_handle_dbapi_exception")
    if method is None:
        return False
    try:
        names = list(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return False
    return names[: len(_ERROR_PATH_PARAMETERS)] == _ERROR_PATH_PARAMETERS


def _wrap_error_path(listener: StatementListener) -> bool:
    try:
        if not _error_path_checked():
            _logger.debug("otel_db: SQLAlchemy error path not wrapped; handle_error ends spans")
            return False
        from sqlalchemy.engine import Connection
        from wrapt import wrap_function_wrapper

        wrap_function_wrapper(Connection, "_handle_dbapi_exception", listener.dbapi_exception)
        return True
    except Exception as error:
        FAILURES.report("SQLAlchemy error path wrapper", error)
        return False


def _unwrap_error_path() -> None:
    from sqlalchemy.engine import Connection

    current = Connection.__dict__.get("_handle_dbapi_exception")
    original = getattr(current, "__wrapped__", None)
    if original is not None:
        Connection._handle_dbapi_exception = original  # type: ignore[method-assign]
