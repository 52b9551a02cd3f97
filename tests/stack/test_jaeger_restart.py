"""Jaeger stopped for 20 s and restarted while the demo keeps sending: the Collector's
persistent sending queue (file_storage, retry_on_failure in collector.yaml) delivers
every span afterwards.

Jaeger's demo storage is in memory, so the spans it had stored before it stopped are
gone after the restart (that is the storage, not the pipeline). The count is therefore:
spans the Collector accepted from the app == spans it had delivered before the stop
(its exporter counter, read once Jaeger is down) + spans found in the restarted Jaeger.
"""

from __future__ import annotations

import time

import pytest

from . import local_stack as ls
from .demo import demo_database, demo_env, start_demo

pytestmark = pytest.mark.slow

SERVICE = "otel-db-demo-restart"
OUTAGE_SECONDS = 20


def span_count(jaeger: ls.Jaeger) -> int:
    return sum(len(t["spans"]) for t in jaeger.traces(SERVICE, limit=5000))


def test_persistent_queue_delivers_every_span_across_a_jaeger_restart(tmp_path):
    built = ls.binaries()
    jaeger = ls.jaeger(built.jaeger, tmp_path).start()
    collector = ls.collector(
        built.otelcol,
        "collector.yaml",
        tmp_path,
        JAEGER_OTLP_ENDPOINT=jaeger.otlp_grpc,
        OTEL_DB_SAMPLING_PERCENTAGE="100",  # every trace kept: every span is countable
        OTEL_DB_TAIL_DECISION_WAIT="1s",
        OTEL_DB_RETRY_INITIAL_INTERVAL="1s",
        OTEL_DB_RETRY_MAX_INTERVAL="2s",
        JAEGER_OTLP_TIMEOUT="2s",
    )
    app = None
    try:
        collector.start()
        with demo_database() as database_url:
            env = demo_env(
                collector.otlp_grpc,
                database_url,
                SERVICE,
                DEMO_ITERATIONS="45",
                DEMO_INTERVAL_SECONDS="0.3",
            )
            app = start_demo(env, tmp_path / "demo.log")
            ls.wait_until(lambda: span_count(jaeger) > 0, 60, "first spans in Jaeger")

            jaeger.stop()
            time.sleep(1)  # an export in flight at the stop has failed or succeeded by now
            delivered_before = collector.total("otelcol_exporter_sent_spans")
            time.sleep(OUTAGE_SECONDS - 1)
            assert app.poll() is None, "the demo ended before the outage did: run it longer"
            # the outage is felt: batches wait in the persistent queue (not failed: retried)
            queued = collector.total("otelcol_exporter_queue_size", exporter="otlp_grpc/jaeger")
            assert queued > 0, "nothing waits in the queue during the outage"
            jaeger.start()

            app.wait(120)
            assert app.returncode == 0, (tmp_path / "demo.log").read_text()[-3000:]

        def drained():
            accepted = collector.total("otelcol_receiver_accepted_spans")
            return accepted > 0 and delivered_before + span_count(jaeger) == accepted

        try:
            ls.wait_until(drained, 90, "every accepted span delivered", interval=2)
        except TimeoutError as error:
            accepted = collector.total("otelcol_receiver_accepted_spans")
            pytest.fail(
                f"{error}: accepted {accepted}, delivered before the stop {delivered_before}, "
                f"in Jaeger after the restart {span_count(jaeger)}\n{collector.log()[-3000:]}"
            )
        assert collector.total("otelcol_exporter_enqueue_failed_spans") == 0
        assert collector.total("otelcol_processor_refused_spans") == 0
    finally:
        if app is not None and app.poll() is None:
            app.kill()
            app.wait(5)
        collector.stop()
        jaeger.stop()
