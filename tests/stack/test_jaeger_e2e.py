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
from .demo import AppTrace, app_traces, compose_app_env, demo_database, demo_env, run_demo

pytestmark = pytest.mark.slow

ITERATIONS = 12
SERVICE = compose_app_env()["OTEL_SERVICE_NAME"]  # otel-db-demo, as in the README
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
def demo(stack, tmp_path_factory) -> dict[str, AppTrace]:
    """The demo's traces as the app recorded them (console exporter next to OTLP)."""
    collector, jaeger = stack
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with demo_database() as database_url:
        env = demo_env(
            collector.otlp_grpc,
            database_url,
            SERVICE,
            DEMO_ITERATIONS=str(ITERATIONS),
            OTEL_TRACES_EXPORTER="otlp,console",
        )
        sent = app_traces(run_demo(env, log, timeout=180))
    flagged = {tid for tid, t in sent.items() if t.flagged}

    def all_flagged_arrived():
        return flagged <= {t["traceID"] for t in jaeger.traces(SERVICE)}

    try:
        ls.wait_until(all_flagged_arrived, 60, "every flagged demo trace in Jaeger")
    except TimeoutError as error:
        pytest.fail(f"{error}\ncollector:\n{collector.log()[-3000:]}")
    time.sleep(3)  # a later batch of healthy traces, if any, lands before the counts
    return sent


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


def test_rolled_back_search_finds_every_rolled_back_transaction(stack, demo):
    found = search(stack[1], "otel_db.transaction.outcome=rolled_back")
    expected = {tid for tid, t in demo.items() if attr.OUTCOME_ROLLED_BACK in t.outcomes}
    # every trace the app recorded as rolled back is found (the console copy of a failed
    # statement can lack the outcome the OTLP copy has, so this is a lower bound) ...
    assert expected <= {t["traceID"] for t in found}
    # ... and every trace found does have a rolled-back span
    for trace in found:
        outcomes = {ls.span_tags(s).get(attr.TRANSACTION_OUTCOME) for s in trace["spans"]}
        assert attr.OUTCOME_ROLLED_BACK in outcomes, root_name(trace)
    assert Counter(root_name(t) for t in found)["POST /customers"] == ITERATIONS


def test_n_plus_one_search_finds_the_order_list(stack, demo):
    found = search(stack[1], "otel_db.n_plus_one.detected=true")
    assert Counter(root_name(t) for t in found) == {"GET /orders": ITERATIONS}
    for trace in found:
        (request,) = spans_with(trace, attr.N_PLUS_ONE_DETECTED)
        assert request["operationName"] == "GET /orders"
        tags = ls.span_tags(request)
        assert tags[attr.N_PLUS_ONE_COUNT] >= 5
        repeated = spans_with(trace, attr.N_PLUS_ONE)
        assert repeated
        assert {s["operationName"] for s in repeated} == {tags[attr.N_PLUS_ONE_QUERY]}


def test_error_category_search_finds_the_constraint_violation(stack, demo):
    found = search(stack[1], "otel_db.error.category=constraint_violation")
    assert Counter(root_name(t) for t in found) == {"POST /customers": ITERATIONS}
    for trace in found:
        (failed,) = spans_with(trace, attr.ERROR_CATEGORY)
        assert ls.span_tags(failed)[attr.DB_SYSTEM_NAME] == "postgresql"


def test_tail_sampling_keeps_every_flagged_trace_and_thins_healthy_ones(demo, traces):
    stored = {t["traceID"] for t in traces}
    assert stored <= set(demo), "Jaeger has traces the demo did not send"
    flagged = {tid for tid, t in demo.items() if t.flagged}
    healthy = set(demo) - flagged
    assert flagged <= stored
    assert len(flagged) >= 3 * ITERATIONS
    # healthy traces (committed or read-only work, no error, nothing slow) are kept by the
    # 10 % baseline only: keeping half of 20 or more has a probability under 1e-6
    assert len(healthy) >= 20, Counter(demo[tid].root for tid in healthy)
    kept = healthy & stored
    assert len(kept) < len(healthy) / 2, Counter(demo[tid].root for tid in kept)


def test_tail_sampling_does_not_keep_released_transactions(stack):
    """`released` (read-only work, CONTRACT) is healthy traffic: the rolled-back policy
    names rolled_back and nothing else, so these are thinned like any healthy trace."""
    collector, jaeger = stack
    service = "read-only-service"
    provider = ls.otlp_tracer_provider(collector, service)
    tracer = provider.get_tracer("read-only")
    for outcome in ["released"] * 30 + [attr.OUTCOME_ROLLED_BACK]:
        root = "GET /catalog" if outcome == "released" else "POST /cart"
        with (
            tracer.start_as_current_span(root),
            tracer.start_as_current_span("TRANSACTION shop") as transaction,
        ):
            transaction.set_attribute(attr.TRANSACTION_OUTCOME, outcome)
    provider.shutdown()
    ls.wait_until(
        lambda: jaeger.traces(service, {attr.TRANSACTION_OUTCOME: "rolled_back"}),
        30,
        "the rolled-back trace (sent last) in Jaeger",
    )
    time.sleep(1)
    kept = [t for t in jaeger.traces(service) if root_name(t) == "GET /catalog"]
    assert len(kept) < 15, f"{len(kept)} of 30 released traces kept"


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
    collector, jaeger = stack
    service = "legacy-service-without-otel-db"
    provider = ls.otlp_tracer_provider(collector, service)
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
