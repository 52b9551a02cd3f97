"""ResilientBatchProcessor: spans an exporter raises on are found and dropped; the rest of
their batch is exported, in order; a collector failure during the search stops it."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext, TraceFlags

from otel_db.export.resilient import ResilientBatchProcessor


def _span(name: str, n: int) -> ReadableSpan:
    context = SpanContext(1, n + 1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(name=name, context=context, start_time=1, end_time=2)


class _PickyExporter(SpanExporter):
    """Raises on any batch holding a span named "bad"; reports a failure (collector
    down) once ``down_after`` exports have been attempted."""

    def __init__(self, down_after: int | None = None) -> None:
        self.delivered: list[str] = []
        self.calls = 0
        self.down_after = down_after

    def export(self, spans):
        self.calls += 1
        if self.down_after is not None and self.calls > self.down_after:
            return SpanExportResult.FAILURE
        if any(span.name == "bad" for span in spans):
            raise TypeError("cannot encode this span")
        self.delivered.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def _processor(exporter) -> ResilientBatchProcessor:
    processor = ResilientBatchProcessor(exporter, batch_size=64, schedule_delay_s=60)
    processor.closed = True  # no background export: the test drives _isolate itself
    return processor


def test_only_the_spans_that_raise_are_dropped_and_order_is_kept():
    names = [f"ok {n}" if n not in (3, 11) else "bad" for n in range(16)]
    batch = [_span(name, n) for n, name in enumerate(names)]
    exporter = _PickyExporter()
    processor = _processor(exporter)
    exported, unsent, reason = processor._isolate(batch, "TypeError: cannot encode this span")
    assert (exported, unsent) == (14, [])
    assert exporter.delivered == [name for name in names if name != "bad"]
    assert processor.report.dropped_unexportable == 2
    assert "TypeError: cannot encode this span" in reason
    assert exporter.calls <= 2 * len(batch) - 2


def test_a_single_span_batch_that_keeps_raising_is_dropped():
    exporter = _PickyExporter()
    processor = _processor(exporter)
    assert processor._isolate([_span("bad", 0)], "TypeError: x") == (0, [], "TypeError: x")
    assert exporter.calls == 0 and processor.report.dropped_unexportable == 1


def test_a_collector_failure_during_the_search_leaves_the_rest_to_the_retries():
    names = [f"ok {n}" if n != 5 else "bad" for n in range(8)]
    batch = [_span(name, n) for n, name in enumerate(names)]
    exporter = _PickyExporter(down_after=2)  # 0-3 delivered, 4-7 raises, then down
    processor = _processor(exporter)
    exported, unsent, _ = processor._isolate(batch, "TypeError: cannot encode this span")
    assert exporter.delivered == ["ok 0", "ok 1", "ok 2", "ok 3"]
    assert exported == 4
    assert [span.name for span in unsent] == names[4:]  # in order, nothing dropped
    assert processor.report.dropped_unexportable == 0
