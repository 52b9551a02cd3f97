"""At exit, a collector that refused during an outage but is back gets the backlog.

The exit gives up at once on a refused collector (nothing listens: waiting would only
hold the process). The refusal it sees may be an outage's that is already over: then the
spans held since must still be exported within the exit bound, not reported lost.
"""

from __future__ import annotations

import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from otel_db.export import resilient
from otel_db.export.report import is_refused
from otel_db.export.resilient import ResilientBatchProcessor
from tests.conftest import free_port
from tests.stack.otlp_receiver import OtlpTraceReceiver

SPANS = 50


def _span(n: int) -> ReadableSpan:
    context = SpanContext(7, n + 1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan(name=f"held {n}", context=context, start_time=1, end_time=2)


def test_spans_held_through_an_outage_reach_a_collector_back_before_exit(monkeypatch):
    # No probing by the export thread: only the exit's own check can find the collector
    # back, so the test cannot pass by the thread's reconnect winning the race.
    monkeypatch.setattr(resilient, "PROBE_INTERVAL_S", 3600.0)
    port = free_port()  # nothing listens yet: the collector is away
    # From the environment, as the configurator makes it (the exit probes that address).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{port}")
    exporter = OTLPSpanExporter(insecure=True, timeout=2)
    processor = ResilientBatchProcessor(exporter, batch_size=SPANS, schedule_delay_s=0.05)
    receiver = None
    try:
        for n in range(SPANS):
            processor.on_end(_span(n))
        for _ in range(200):  # bounded: 10 s in 50 ms steps
            if processor._failures and is_refused(processor.report.last_reason):
                break
            time.sleep(0.05)
        assert processor._failures, "the export never failed while the collector was away"
        assert is_refused(processor.report.last_reason), processor.report.last_reason

        receiver = OtlpTraceReceiver(port=port).start()
        processor.shutdown_until(time.monotonic() + 8)
        received = {span.name for span in receiver.spans()}
    finally:
        if not processor.closed:
            processor.shutdown_until(time.monotonic() + 1)
        if receiver is not None:
            receiver.stop()
    assert received == {f"held {n}" for n in range(SPANS)}
