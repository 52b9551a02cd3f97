"""A span exporter that prints each trace's database spans as a tree in the terminal.

Select it with ``OTEL_TRACES_EXPORTER=otel_db_terminal``. Spans of one trace arrive in
several batches, so they are held until the trace's root span ends (or the trace has
waited too long), within fixed bounds.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_db.exporters.terminal_format import render_trace

_MAX_TRACES = 1000
_MAX_SPANS_PER_TRACE = 2000
_MAX_WAIT_SECONDS = 30.0


class TerminalSpanExporter(SpanExporter):
    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, tuple[float, list[ReadableSpan]]] = OrderedDict()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ready: list[list[ReadableSpan]] = []
        now = time.monotonic()
        with self._lock:
            for span in spans:
                if span.context is None:
                    continue
                trace_id = span.context.trace_id
                started, held = self._pending.setdefault(trace_id, (now, []))
                if len(held) < _MAX_SPANS_PER_TRACE:
                    held.append(span)
                if span.parent is None or span.parent.is_remote:
                    ready.append(self._pending.pop(trace_id)[1])
            while self._pending:
                trace_id, (started, held) = next(iter(self._pending.items()))
                if len(self._pending) <= _MAX_TRACES and now - started < _MAX_WAIT_SECONDS:
                    break
                ready.append(self._pending.pop(trace_id)[1])
        self._print(ready)
        return SpanExportResult.SUCCESS

    def _print(self, traces: list[list[ReadableSpan]]) -> None:
        out = self._out or sys.stdout
        for spans in traces:
            lines = render_trace(spans)
            if lines:
                out.write("\n".join(lines) + "\n\n")
        out.flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        with self._lock:
            leftovers = [held for _, held in self._pending.values()]
            self._pending.clear()
        self._print(leftovers)
