"""End to end, the user's path: examples/app.py on PostgreSQL and Redis under
opentelemetry-instrument -> the real Collector with collector-config/collector.yaml ->
the real Jaeger v2 with collector-config/jaeger.yaml. Every search is the one the
README's Jaeger walk-through tells a user to type into the Search tab (service
``otel-db-demo``, one ``key=value`` tag), sent to the HTTP API the UI calls."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_db import attributes as attr

from . import local_stack as ls
from .demo import compose_app_env, demo_database, demo_env, run_demo

pytestmark = pytest.mark.slow

ITERATIONS = 12
SERVICE = compose_app_env()["OTEL_SERVICE_NAME"]  # otel-db-demo, as in the README
# what each demo request is flagged for (examples/app.py, run_once)
FLAGGED = {"POST /customers", "GET /orders", "GET /reports/sales"}
HEALTHY = {"POST /orders", "GET /stats", "seed demo data"}
# literals of the demo's data: customer e-mails, order totals (1000 + 250 n, 4200 cents)
DEMO_LITERALS = ("example.com", "customer1@", "4200", "1250", "2750")


def root_name(trace: dict) -> str:
    roots = [s for s in trace["spans"] if not s.get("references")]
    assert len(roots) == 1, f"trace {trace['traceID']} has {len(roots)} roots"
    return roots[0]["operationName"]


def spans_with(trace: dict, key: str) -> list[dict]:
    return [s for s in trace["spans"] if key in ls.span_tags(s)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[tuple[ls.Collector, ls.Jaeger]]:
    built = ls.binaries()
    tmp = tmp_path_factory.mktemp("stack-e2e")
    jaeger = ls.jaeger(built.jaeger, tmp).start()
    collector = ls.collector(
        built.otelcol,
        "collector.yaml",
        tmp,
        JAEGER_OTLP_ENDPOINT=jaeger.otlp_grpc,
        # shorter than the 10 s / 15 s defaults so the test waits less; policies unchanged
        OTEL_DB_TAIL_DECISION_WAIT="2s",
        OTEL_DB_SPANMETRICS_FLUSH_INTERVAL="1s",
    )
    try:
        collector.start()
        yield collector, jaeger
    finally:
        collector.stop()
        jaeger.stop()


@pytest.fixture(scope="module")
def demo(stack, tmp_path_factory) -> str:
    collector, jaeger = stack
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with demo_database() as database_url:
        env = demo_env(collector.otlp_grpc, database_url, SERVICE, DEMO_ITERATIONS=str(ITERATIONS))
        output = run_demo(env, log, timeout=180)

    def all_flagged_arrived():
        roots = Counter(root_name(t) for t in jaeger.traces(SERVICE))
        return all(roots[name] >= ITERATIONS for name in FLAGGED)

    try:
        ls.wait_until(all_flagged_arrived, 60, "every flagged demo trace in Jaeger")
    except TimeoutError as error:
        pytest.fail(f"{error}\ndemo:\n{output[-2000:]}\ncollector:\n{collector.log()[-3000:]}")
    time.sleep(3)  # a later batch of healthy traces, if any, lands before the counts
    return output


@pytest.fixture(scope="module")
def traces(stack, demo) -> list[dict]:
    return stack[1].traces(SERVICE)


def search(jaeger: ls.Jaeger, tag: str) -> list[dict]:
    key, _, value = tag.partition("=")
    return jaeger.traces(SERVICE, {key: value})


def test_the_service_appears(stack, demo):
    assert SERVICE in stack[1].services()


def test_slow_query_search_finds_the_report_with_sanitized_text_and_threshold(stack, demo):
    found = search(stack[1], "otel_db.query.slow=true")
    assert Counter(root_name(t) for t in found) == {"GET /reports/sales": ITERATIONS}
    for trace in found:
        (slow,) = spans_with(trace, attr.QUERY_SLOW)
        tags = ls.span_tags(slow)
        assert tags[attr.QUERY_SLOW] is True
        assert tags[attr.QUERY_SLOW_THRESHOLD_MS] == 500
        assert tags[attr.DB_SYSTEM_NAME] == "postgresql"
        text = tags[attr.DB_QUERY_TEXT]
        assert "pg_sleep" in text and "0.6" not in text, text
        assert slow["duration"] >= 500_000  # microseconds


def test_rolled_back_search_finds_the_duplicate_registration(stack, demo):
    found = search(stack[1], "otel_db.transaction.outcome=rolled_back")
    assert Counter(root_name(t) for t in found) == {"POST /customers": ITERATIONS}


def test_n_plus_one_search_finds_the_order_list(stack, demo):
    found = search(stack[1], "otel_db.n_plus_one.detected=true")
    assert Counter(root_name(t) for t in found) == {"GET /orders": ITERATIONS}
    for trace in found:
        (request,) = spans_with(trace, attr.N_PLUS_ONE_DETECTED)
        assert request["operationName"] == "GET /orders"
        assert ls.span_tags(request)[attr.N_PLUS_ONE_COUNT] >= 5
        assert len(spans_with(trace, attr.N_PLUS_ONE)) >= 5


def test_error_category_search_finds_the_constraint_violation(stack, demo):
    found = search(stack[1], "otel_db.error.category=constraint_violation")
    assert Counter(root_name(t) for t in found) == {"POST /customers": ITERATIONS}
    for trace in found:
        (failed,) = spans_with(trace, attr.ERROR_CATEGORY)
        assert ls.span_tags(failed)[attr.DB_SYSTEM_NAME] == "postgresql"


def test_tail_sampling_keeps_every_flagged_trace_and_thins_healthy_ones(traces):
    roots = Counter(root_name(t) for t in traces)
    assert set(roots) <= FLAGGED | HEALTHY, roots
    for name in FLAGGED:
        assert roots[name] == ITERATIONS, (name, roots)
    # healthy: 2 per iteration + the seed, kept by the 10 % baseline only. Keeping half or
    # more of them has a probability under 1e-7 with a working policy.
    healthy_sent = 2 * ITERATIONS + 1
    healthy_kept = sum(roots[name] for name in HEALTHY)
    assert healthy_kept < healthy_sent / 2, roots


def test_no_demo_literal_reaches_jaeger(traces):
    assert traces
    leaks = []
    for trace in traces:
        for span in trace["spans"]:
            fields = [span["operationName"]]
            for tag in span.get("tags", []):
                fields += [tag["key"], str(tag["value"])]
            for log in span.get("logs", []):
                for tag in log.get("fields", []):
                    fields += [tag["key"], str(tag["value"])]
            for field in fields:
                for literal in DEMO_LITERALS:
                    whole = literal.isdigit() and field == literal
                    if whole or (not literal.isdigit() and literal in field):
                        leaks.append((span["operationName"], literal, field[:200]))
    assert not leaks, leaks[:10]


def test_span_metrics_reach_prometheus_with_the_db_dimensions(stack, demo):
    collector = stack[0]

    def db_series():
        text = ls.http_get(collector.prometheus_url)[1].decode()
        return [
            line
            for line in text.splitlines()
            if line.startswith("traces_span_metrics_calls_total{")
            and 'db_system_name="postgresql"' in line
        ]

    series = ls.wait_until(db_series, 30, "span metrics with db.system.name=postgresql")
    assert any(
        'db_operation_name="SELECT"' in line and 'db_query_summary="SELECT demo_orders"' in line
        for line in series
    ), series[:5]
    assert any(f'service_name="{SERVICE}"' in line for line in series)


def test_collector_redacts_literals_from_services_without_otel_db(stack, tmp_path: Path):
    """A service that does not sanitize: the Collector's transform/redact rules scrub it."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    collector, jaeger = stack
    service = "legacy-service-without-otel-db"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"http://{collector.otlp_grpc}", insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("legacy")
    with (
        tracer.start_as_current_span("GET /legacy"),
        tracer.start_as_current_span("SELECT users") as span,
    ):
        span.set_attribute(
            attr.DB_QUERY_TEXT,
            "SELECT * FROM users WHERE email = 'leak.canary@example.com' AND pin = 918273",
        )
        span.set_attribute(attr.QUERY_SLOW, True)  # kept by the slow-queries policy
        span.add_event(
            "exception",
            {
                "exception.type": "IntegrityError",
                "exception.message": "Key (email)=(leak.canary@example.com) already exists",
            },
        )
    provider.shutdown()

    (trace,) = ls.wait_until(lambda: jaeger.traces(service), 30, f"{service} in Jaeger")
    (query,) = [s for s in trace["spans"] if s["operationName"] == "SELECT users"]
    assert ls.span_tags(query)[attr.DB_QUERY_TEXT] == (
        "SELECT * FROM users WHERE email = ? AND pin = ?"
    )
    (event,) = query["logs"]
    message = {f["key"]: f["value"] for f in event["fields"]}["exception.message"]
    assert message == "Key (email)=(?) already exists"
