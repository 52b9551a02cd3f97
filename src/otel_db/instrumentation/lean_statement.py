"""A raw DB-API statement's span as contrib's ``CursorTracer`` makes it, for less.

Per statement, contrib's tracer runs a regular expression for the operation, starts
the span without attributes and then writes them one call at a time through the SDK's
locked and validated setters, enters a generator context manager, and (under the
stable database conventions) builds a new metric attribute dict for two histogram
records. Apart from the span's start and end and the measured values, all of that is
the same for every execution of one statement text. :class:`LeanStatementTracer` works
it out once per text, by asking contrib's own tracer (so the name and attributes are
contrib's, including otel_db's adjustments to it), and per execution only starts the
span with them, makes it current, runs the statement, and records the measurements,
through the shared-attributes shortcut and only when the process exports metrics.

It is used where its span is exactly contrib's: on the verified contrib versions (the
``contrib.dbapi`` shortcut: it reads the integration's tracer and histograms and
contrib's span-populating and metric-attribute methods), with contrib's own commenter
and parameter capture off (they change the span per execution), for ``str``
statements. Everything else runs through contrib's ``CursorTracer`` as before.
"""

from __future__ import annotations

import time
from typing import Any, Final

from opentelemetry import context as context_api
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otel_db import attributes as attr
from otel_db.compat.verified import shortcut
from otel_db.explain.raw_statements import raw_explainer
from otel_db.metrics.export_state import metrics_exported
from otel_db.metrics.interned_histogram import InternedAttributesHistogram
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.settings import current_settings

#: Statement texts remembered per tracer, and the longest text remembered.
MAX_TEMPLATES: Final = 512
MAX_TEMPLATE_CHARS: Final = 4096

_CLIENT = SpanKind.CLIENT
_ROWS = attr.DB_RESPONSE_RETURNED_ROWS
_BATCH = attr.DB_OPERATION_BATCH_SIZE
_MAX_ROWCOUNT: Final = 2**62
_perf_counter = time.perf_counter
_attach = context_api.attach
_detach = context_api.detach


class _AttributeCollector:
    """Stands in for a recording span while contrib's tracer populates it."""

    __slots__ = ("attributes",)

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def is_recording(self) -> bool:
        return True

    def set_attributes(self, attributes: Any) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


class _Template:
    __slots__ = ("attributes", "metric_attributes", "name", "operation")

    def __init__(
        self,
        name: str,
        operation: str,
        attributes: dict[str, Any],
        metric_attributes: dict[str, Any] | None,
    ) -> None:
        self.name = name
        self.operation = operation
        self.attributes = attributes
        self.metric_attributes = metric_attributes


def usable(integration: Any) -> bool:
    """Whether a lean tracer can make exactly contrib's spans for ``integration``."""
    return (
        shortcut("contrib.dbapi")
        and not getattr(integration, "enable_commenter", False)
        and not getattr(integration, "capture_parameters", False)
        and getattr(integration, "_tracer", None) is not None
    )


class LeanStatementTracer:
    """One traced DB-API statement: contrib's span, contrib's metrics, less work.

    ``contrib_tracer`` is the connection's ``CursorTracer``: the source of each text's
    name and attributes, and the path of whatever this tracer does not take.
    """

    def __init__(self, contrib_tracer: Any) -> None:
        self._contrib = contrib_tracer
        integration = contrib_tracer._db_api_integration
        self._integration = integration
        self._tracer = integration._tracer
        self._templates: dict[str, _Template] = {}
        duration = getattr(integration, "_duration_histogram", None)
        rows = getattr(integration, "_returned_rows_histogram", None)
        # contrib creates its histograms only under the stable database conventions.
        self._metrics = (
            metrics_exported()
            and isinstance(duration, InternedAttributesHistogram)
            and isinstance(rows, InternedAttributesHistogram)
        )
        self._duration = duration if self._metrics else None
        self._rows = rows if self._metrics else None
        self._explainer = raw_explainer(current_settings())

    def _template(self, cursor: Any, statement: str) -> _Template | None:
        contrib = self._contrib
        integration = self._integration
        args = (statement,)
        collector = _AttributeCollector()
        contrib._populate_span(collector, cursor, *args)
        operation = contrib.get_operation_name(cursor, args)
        name = operation or integration.database or integration.name
        metric_attributes = None
        if self._metrics:
            metric_attributes = self._duration.keep(  # type: ignore[union-attr]
                contrib._get_metric_attributes(operation, None)
            )
            if metric_attributes is None:
                return None
        template = _Template(name, operation, collector.attributes, metric_attributes)
        if len(statement) <= MAX_TEMPLATE_CHARS:
            templates = self._templates
            if len(templates) >= MAX_TEMPLATES:
                templates.clear()  # bounded; a repeating workload refills it at once
            templates[statement] = template
        return template

    def traced_execution(
        self, cursor: Any, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run ``method(*args, **kwargs)`` (a cursor's execute, executemany or callproc)
        under its statement span, as ``CursorTracer.traced_execution`` would."""
        statement = args[0] if args else None
        template = None
        if type(statement) is str:
            template = self._templates.get(statement)
            if template is None:
                try:
                    template = self._template(cursor, statement)
                except Exception as error:  # contrib's own path then
                    FAILURES.report("lean statement template", error)
        if template is None:
            return self._contrib.traced_execution(cursor, method, *args, **kwargs)
        span = self._tracer.start_span(template.name, kind=_CLIENT, attributes=template.attributes)
        token = _attach(set_span_in_context(span))
        many = method.__name__ == "executemany"
        try:
            if many:
                self._batch(span, args)
            started = _perf_counter()
            try:
                result = method(*args, **kwargs)
            except Exception as error:
                if self._metrics:
                    self._record_error(cursor, template, started, error)
                if span.is_recording():  # as the SDK's use_span does for contrib
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                raise
            elapsed = _perf_counter() - started
            if not many:
                self._after(span, cursor, args, kwargs, elapsed)
            if self._metrics:
                self._record(cursor, template, elapsed)
            return result
        finally:
            _detach(token)
            span.end()

    @staticmethod
    def _batch(span: Any, args: tuple[Any, ...]) -> None:
        try:
            rows = args[1] if len(args) > 1 else None
            if isinstance(rows, (list, tuple)) and len(rows) > 1 and span.is_recording():
                DEFERRED.add(span, {_BATCH: len(rows)})
        except Exception as error:
            FAILURES.report("executemany batch size", error)

    def _record_error(
        self, cursor: Any, template: _Template, started: float, error: Exception
    ) -> None:
        try:
            self._contrib._record_metrics(cursor, template.operation, started, error)
        except Exception as failure:
            FAILURES.report("statement metrics", failure)

    def _after(self, span: Any, cursor: Any, args: Any, kwargs: Any, took: float) -> None:
        """Returned rows (and, when asked for, a slow SELECT's plan) on ``span``."""
        try:
            if not span.is_recording():
                return
            if cursor.description is not None:
                rowcount = cursor.rowcount
                if type(rowcount) is int and 0 <= rowcount < _MAX_ROWCOUNT:
                    DEFERRED.add(span, {_ROWS: rowcount})
            if self._explainer.enabled:
                self._explainer.after_statement(span, cursor, args, kwargs, int(took * 1e9))
        except Exception as error:
            FAILURES.report("returned rows / explain", error)

    def _record(self, cursor: Any, template: _Template, elapsed: float) -> None:
        try:
            kept = template.metric_attributes
            self._duration.record_kept(elapsed, kept)  # type: ignore[union-attr]
            rowcount = getattr(cursor, "rowcount", None)
            if isinstance(rowcount, int) and rowcount >= 0:
                self._rows.record_kept(rowcount, kept)  # type: ignore[union-attr]
        except Exception as error:
            FAILURES.report("statement metrics", error)


__all__ = ["MAX_TEMPLATES", "LeanStatementTracer", "usable"]
