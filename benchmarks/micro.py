"""Micro-benchmarks of otel_db's per-span and per-statement stages, in one process.

    python -m benchmarks.micro [--quick]

- SDK baselines: a bare span (start + end, no processor work) and one attribute write.
- The enrichment stage (``processing_chain(settings, downstream=<no-op processor>)``)
  per database statement span, with default settings and with every feature on:
  end to end (the difference between a TracerProvider running the chain and one
  running only the no-op processor; statements run 10 at a time under an application
  span, so N+1 and query-count bookkeeping is included) and ``on_end`` alone on
  already finished spans.
- ``analyze_statement`` (sanitize + summary + fingerprint) per statement, cold (a text
  never seen: the literal differs each time) and cached (the same texts again).

Each figure is the median of several repeats (min in brackets), in microseconds.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind

from benchmarks.configs import every_feature_on
from otel_db import attributes as attr
from otel_db.pipeline.build import processing_chain
from otel_db.settings import Settings
from otel_db.sql.analysis import analyze_statement

STATEMENTS_PER_PARENT = 10

STATEMENT = (
    "SELECT bench_items.id, bench_items.name, bench_items.value FROM bench_items "
    "WHERE bench_items.id = %(id_1)s"
)

#: Statement texts for the analysis benchmark: (name, template with one {n} literal).
ANALYSIS_TEXTS = {
    "short": "SELECT id, name FROM users WHERE id = {n}",
    "orm_join": (
        "SELECT users.id AS users_id, users.name AS users_name, orders.id AS orders_id, "
        "orders.total AS orders_total FROM users JOIN orders ON orders.user_id = users.id "
        "WHERE users.id = {n} AND orders.status = 'paid' AND orders.created_at > "
        "'2024-01-01' ORDER BY orders.created_at DESC LIMIT 10 OFFSET 0"
    ),
    "insert_many": (
        "INSERT INTO events (id, kind, payload, created_at) VALUES "
        + ", ".join(f"({{n}}, 'click', '{{{{\"x\": {i}}}}}', now())" for i in range(20))
    ),
}


class NoOpProcessor(SpanProcessor):
    """The downstream processor: receives the span and drops it."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        pass


def _db_attributes() -> dict[str, Any]:
    return {
        attr.DB_SYSTEM_NAME: "postgresql",
        attr.DB_NAMESPACE: "test",
        attr.DB_QUERY_TEXT: STATEMENT,
        attr.DB_OPERATION_NAME: "SELECT",
        attr.SERVER_ADDRESS: "127.0.0.1",
        attr.SERVER_PORT: 5432,
    }


def _provider(processor: SpanProcessor) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-db-micro"}))
    provider.add_span_processor(processor)
    return provider


def _statements_under_parents(tracer: trace.Tracer, parents: int) -> None:
    attributes = _db_attributes()
    for _ in range(parents):
        with tracer.start_as_current_span("GET /items", kind=SpanKind.SERVER):
            for _ in range(STATEMENTS_PER_PARENT):
                span = tracer.start_span("SELECT test", kind=SpanKind.CLIENT, attributes=attributes)
                span.end()


def _repeat(fn: Callable[[], int], repeats: int) -> tuple[float, float]:
    """(median, min) microseconds per item over ``repeats`` runs of ``fn``, which returns
    how many items it processed."""
    per_item = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        items = fn()
        per_item.append((time.perf_counter_ns() - start) / items / 1000)
    return statistics.median(per_item), min(per_item)


def bench_sdk_baseline(parents: int, repeats: int) -> dict[str, tuple[float, float]]:
    tracer = _provider(NoOpProcessor()).get_tracer("micro")
    attributes = _db_attributes()

    def bare() -> int:
        for _ in range(parents * STATEMENTS_PER_PARENT):
            tracer.start_span("SELECT test", kind=SpanKind.CLIENT).end()
        return parents * STATEMENTS_PER_PARENT

    def one_attribute() -> int:
        span = tracer.start_span("attrs")
        n = parents * STATEMENTS_PER_PARENT
        for i in range(n):
            span.set_attribute("db.query.text", STATEMENT if i & 1 else "x")
        span.end()
        return n

    def db_span() -> int:
        for _ in range(parents * STATEMENTS_PER_PARENT):
            tracer.start_span("SELECT test", kind=SpanKind.CLIENT, attributes=attributes).end()
        return parents * STATEMENTS_PER_PARENT

    return {
        "bare SDK span (start+end)": _repeat(bare, repeats),
        "one attribute write": _repeat(one_attribute, repeats),
        "SDK span with 6 DB attributes": _repeat(db_span, repeats),
    }


def bench_enrichment(
    settings: Settings, parents: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """Per database statement span: end to end with the chain minus without it, and on_end
    alone on finished spans."""
    plain = _provider(NoOpProcessor()).get_tracer("micro")
    chain = processing_chain(settings, NoOpProcessor())
    enriched = _provider(chain).get_tracer("micro")
    statements = parents * STATEMENTS_PER_PARENT

    def run(tracer: trace.Tracer) -> Callable[[], int]:
        def go() -> int:
            _statements_under_parents(tracer, parents)
            return statements

        return go

    # Alternate the two so drift (other load, frequency) hits both alike.
    with_chain, without = [], []
    for _ in range(repeats):
        without.append(_repeat(run(plain), 1)[0])
        with_chain.append(_repeat(run(enriched), 1)[0])

    # on_end alone, on finished spans made by a provider without processors.
    collector: list[ReadableSpan] = []

    class Keep(NoOpProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            collector.append(span)

    keeper = _provider(Keep()).get_tracer("micro")
    attributes = _db_attributes()

    def on_end_only() -> int:
        collector.clear()
        for _ in range(statements):
            keeper.start_span("SELECT test", kind=SpanKind.CLIENT, attributes=attributes).end()
        spans = list(collector)
        start = time.perf_counter_ns()
        for span in spans:
            chain.on_end(span)
        return (time.perf_counter_ns() - start), len(spans)  # type: ignore[return-value]

    on_end_times = []
    for _ in range(repeats):
        elapsed, count = on_end_only()  # type: ignore[misc]
        on_end_times.append(elapsed / count / 1000)
    chain.shutdown()
    return {
        "span end to end, no otel_db": (statistics.median(without), min(without)),
        "span end to end, with chain": (statistics.median(with_chain), min(with_chain)),
        # median minus median, and best minus best: the latter is the least disturbed by
        # other load on the machine.
        "enrichment added per statement span": (
            statistics.median(with_chain) - statistics.median(without),
            min(with_chain) - min(without),
        ),
        "chain.on_end alone (root statement span)": (
            statistics.median(on_end_times),
            min(on_end_times),
        ),
    }


def bench_analysis(count: int, repeats: int) -> dict[str, tuple[float, float]]:
    out = {}
    serial = iter(range(10**12))
    for name, template in ANALYSIS_TEXTS.items():

        def cold(template: str = template) -> int:
            # A literal never used before: a cache miss (and an eviction once full).
            texts = [template.replace("{n}", str(next(serial))) for _ in range(count)]
            start = time.perf_counter_ns()
            for text in texts:
                analyze_statement(text)
            cold.elapsed = time.perf_counter_ns() - start  # type: ignore[attr-defined]
            return count

        texts = [template.replace("{n}", str(i)) for i in range(50)]
        for text in texts:
            analyze_statement(text)

        def cached(texts: list[str] = texts) -> int:
            for _ in range(count // len(texts)):
                for text in texts:
                    analyze_statement(text)
            return (count // len(texts)) * len(texts)

        cold_times = []
        for _ in range(repeats):
            cold()
            cold_times.append(cold.elapsed / count / 1000)  # type: ignore[attr-defined]
        out[f"analyze_statement cold, {name} ({len(template)} chars)"] = (
            statistics.median(cold_times),
            min(cold_times),
        )
        out[f"analyze_statement cached, {name}"] = _repeat(cached, repeats)
    return out


def run(quick: bool = False) -> dict[str, dict[str, tuple[float, float]]]:
    parents = 30 if quick else 2000
    repeats = 3 if quick else 7
    full = Settings.from_env(every_feature_on())
    return {
        "SDK baselines": bench_sdk_baseline(parents, repeats),
        "enrichment, default settings": bench_enrichment(Settings.from_env({}), parents, repeats),
        "enrichment, every feature on": bench_enrichment(full, parents, repeats),
        "statement analysis": bench_analysis(200 if quick else 3000, repeats),
    }


def render(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    lines = ["| measure | median us | min us |", "|---|---|---|"]
    for group, rows in results.items():
        for name, (median, low) in rows.items():
            lines.append(f"| {group}: {name} | {median:.2f} | {low:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    results = run(args.quick)
    print(json.dumps(results, indent=1) if args.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
