"""Query-count and N+1 assertions for an application's own tests.

Used through the pytest plugin (fixtures ``assert_db_queries`` and
``assert_no_n_plus_one``), or directly::

    with QueryCapture("list orders") as captured:
        list_orders()
    assert captured.count <= 3

The block runs under a span of its own, so the statements it issues are told apart from
everything else in the process (other threads, background jobs) by trace, and the N+1
detector of the otel_db pipeline reports on that span exactly as it does on a request.
"""

from __future__ import annotations

import threading
from types import TracebackType

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from otel_db import attributes as attr
from otel_db.enrichers.n_plus_one import publish_counts
from otel_db.pipeline.db_span import is_db_client_span, query_text
from otel_db.sql.analysis import analyze_statement

_MAX_RECORDED = 10_000


class _StatementRecorder(SpanProcessor):
    """Collects the database spans of the traces a capture is watching, and nothing else."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, list[ReadableSpan]] = {}

    def watch(self, trace_id: int) -> None:
        with self._lock:
            self._watched[trace_id] = []

    def release(self, trace_id: int) -> list[ReadableSpan]:
        with self._lock:
            return self._watched.pop(trace_id, [])

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        attributes = span.attributes
        if (
            span.context is None
            or not is_db_client_span(span.kind, attributes)
            or attributes.get(attr.QUERY_LIBRARY_ISSUED)  # a pool ping, dialect start-up
        ):
            return
        with self._lock:
            recorded = self._watched.get(span.context.trace_id)
            if recorded is not None and len(recorded) < _MAX_RECORDED:
                recorded.append(span)


_recorder_lock = threading.Lock()
_recorders: dict[int, _StatementRecorder] = {}


def _recorder_for(provider: TracerProvider) -> _StatementRecorder:
    with _recorder_lock:
        recorder = _recorders.get(id(provider))
        if recorder is None:
            recorder = _StatementRecorder()
            provider.add_span_processor(recorder)
            _recorders[id(provider)] = recorder
        return recorder


class _Discard(SpanProcessor):
    """The end of the test pipeline: tests inspect spans, nothing is exported."""


def _install_test_pipeline() -> None:
    """otel_db's pipeline and instrumentations, as the launcher sets them up, minus export."""
    from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors
    from opentelemetry.sdk.resources import Resource

    from otel_db.distro import OtelDbDistro
    from otel_db.pipeline.build import processing_chain
    from otel_db.resource import distro_resource_attributes
    from otel_db.settings import current_settings

    distro = OtelDbDistro()
    distro.configure()
    provider = TracerProvider(resource=Resource.create(distro_resource_attributes()))
    provider.add_span_processor(processing_chain(current_settings(), _Discard()))
    trace.set_tracer_provider(provider)
    _load_instrumentors(distro)


def ensure_tracing() -> TracerProvider:
    """The SDK provider in use; an export-less otel_db pipeline when the process has none.

    Run the tests under ``opentelemetry-instrument`` (or call ``otel_db.configure()`` in a
    conftest) so that connections made at import time are instrumented too; otherwise
    instrumentation starts at the first assertion.
    """
    with _recorder_lock:
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            _install_test_pipeline()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError(
            "otel_db query assertions need the OpenTelemetry SDK's TracerProvider; "
            f"the process has {type(provider).__name__} (is OTEL_SDK_DISABLED set?)"
        )
    return provider


class QueryCapture:
    """Records the database statements run inside a ``with`` block."""

    def __init__(self, name: str = "otel_db query capture") -> None:
        self._name = name
        self._span: Span | None = None
        self._token: object = None
        self._recorder: _StatementRecorder | None = None
        self.spans: list[ReadableSpan] = []
        self.n_plus_one: dict[str, object] = {}

    def __enter__(self) -> QueryCapture:
        provider = ensure_tracing()
        self._recorder = _recorder_for(provider)
        # A root span of its own: the block's statements are found by its trace id.
        self._span = provider.get_tracer("otel_db.testing").start_span(
            self._name, context=Context()
        )
        self._recorder.watch(self._span.get_span_context().trace_id)
        self._token = context_api.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._span is not None and self._recorder is not None
        context_api.detach(self._token)
        # The N+1 detector writes a parent's counts when the parent ends, on the span it
        # exports, which the recorder (a sibling processor) never sees: have it write them
        # on the live capture span first, then read them there.
        publish_counts(self._span)
        self._span.end()
        attributes = self._span.attributes or {}
        self.spans = self._recorder.release(self._span.get_span_context().trace_id)
        self.spans.sort(key=lambda span: span.start_time or 0)
        if attributes.get(attr.N_PLUS_ONE_DETECTED):
            self.n_plus_one = {
                "count": attributes.get(attr.N_PLUS_ONE_COUNT),
                "query": attributes.get(attr.N_PLUS_ONE_QUERY),
            }

    @property
    def count(self) -> int:
        return len(self.spans)

    @property
    def statements(self) -> list[str]:
        """The statements as the exporters see them: sanitized, never with values."""
        texts = []
        for span in self.spans:
            text = query_text(span.attributes or {}) or span.name
            texts.append(analyze_statement(text).sanitized_text)
        return texts

    def listing(self) -> str:
        return "\n".join(f"  {n}. {text}" for n, text in enumerate(self.statements, start=1))
