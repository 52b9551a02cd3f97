"""A span exporter that prints each trace's database spans as a tree in the terminal.

Select it with ``OTEL_TRACES_EXPORTER=otel_db_terminal``. A one-time legend explains the
facts in brackets. Spans of one trace arrive in several batches and not in tree order: a
statement held until its transaction ends reaches the exporter after the transaction
span, which may be the root (library mode, no application span). A trace is printed
once, whole: when its root has arrived and every transaction in it has delivered as
many statements as it counted, or, failing that, once it has waited ``settle_s`` after
its root (checked at each export, flush and shutdown). Everything held is bounded in
traces, spans per trace and age.
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

from otel_db import attributes as attr
from otel_db.exporters.terminal_format import LEGEND, render_trace
from otel_db.pipeline.db_span import db_system

_MAX_TRACES = 1000
_MAX_SPANS_PER_TRACE = 2000
_MAX_WAIT_SECONDS = 30.0
_SETTLE_SECONDS = 2.0
#: Ids of traces already printed, so that a straggler is labelled as one.
_MAX_PRINTED_REMEMBERED = 4096


class _Pending:
    __slots__ = ("root_at", "since", "spans")

    def __init__(self, since: float) -> None:
        self.since = since
        self.root_at: float | None = None
        self.spans: list[ReadableSpan] = []


def trace_complete(spans: Sequence[ReadableSpan]) -> bool:
    """Every transaction span's statements are here (its count includes its savepoints')."""
    expected: dict[object, int] = {}
    received: dict[object, int] = {}
    for span in spans:
        attributes = span.attributes or {}
        transaction_id = attributes.get(attr.TRANSACTION_ID)
        if transaction_id is None:
            continue
        count = attributes.get(attr.TRANSACTION_STATEMENT_COUNT)
        if count is not None and attr.DB_OPERATION_BATCH_SIZE in attributes:
            continue  # a Redis MULTI/EXEC pipeline: one span, no statement spans under it
        if count is not None:
            if isinstance(count, int) and count > expected.get(transaction_id, 0):
                expected[transaction_id] = count
        elif db_system(attributes) is not None:
            received[transaction_id] = received.get(transaction_id, 0) + 1
    return all(received.get(tid, 0) >= count for tid, count in expected.items())


class TerminalSpanExporter(SpanExporter):
    def __init__(
        self, out: TextIO | None = None, *, settle_s: float = _SETTLE_SECONDS, legend: bool = True
    ) -> None:
        self._out = out
        self._settle_s = settle_s
        self._legend_due = legend
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._printed: OrderedDict[int, None] = OrderedDict()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        now = time.monotonic()
        with self._lock:
            for span in spans:
                if span.context is None:
                    continue
                trace_id = span.context.trace_id
                pending = self._pending.get(trace_id)
                if pending is None:
                    pending = self._pending[trace_id] = _Pending(now)
                if len(pending.spans) < _MAX_SPANS_PER_TRACE:
                    pending.spans.append(span)
                if span.parent is None or span.parent.is_remote:
                    pending.root_at = now
            ready = self._take_ready(now, everything=False)
        self._print(ready)
        return SpanExportResult.SUCCESS

    def _take_ready(self, now: float, everything: bool) -> list[tuple[int, list[ReadableSpan]]]:
        ready: list[tuple[int, list[ReadableSpan]]] = []
        overflow = len(self._pending) - _MAX_TRACES
        for trace_id, pending in list(self._pending.items()):
            due = (
                everything
                or overflow > 0
                or now - pending.since >= _MAX_WAIT_SECONDS
                or (
                    pending.root_at is not None
                    and (now - pending.root_at >= self._settle_s or trace_complete(pending.spans))
                )
            )
            if due:
                overflow -= 1
                ready.append((trace_id, self._pending.pop(trace_id).spans))
        return ready

    def _print(self, traces: list[tuple[int, list[ReadableSpan]]]) -> None:
        out = self._out or sys.stdout
        dim = bool(getattr(out, "isatty", lambda: False)())
        text: list[str] = []
        for trace_id, spans in traces:
            lines = render_trace(spans, dim=dim)
            if not lines:
                continue
            with self._lock:
                if trace_id in self._printed:
                    lines[0] += " (late spans of a trace printed above)"
                self._printed[trace_id] = None
                while len(self._printed) > _MAX_PRINTED_REMEMBERED:
                    self._printed.popitem(last=False)
                if self._legend_due:
                    self._legend_due = False
                    text.append("\n".join(LEGEND) + "\n\n")
            text.append("\n".join(lines) + "\n\n")
        if text:
            out.write("".join(text))
        out.flush()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            ready = self._take_ready(time.monotonic(), everything=False)
        self._print(ready)
        return True

    def shutdown(self) -> None:
        with self._lock:
            leftovers = self._take_ready(time.monotonic(), everything=True)
        self._print(leftovers)
