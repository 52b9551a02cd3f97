"""Memory stays bounded whatever the app forgets to end, and over many spans.

Each test runs a warm-up (state fills to its caps), then measures with ``tracemalloc``
only what is allocated during the measured window AND still alive at its end: that is
the growth. Test-infrastructure memory (the in-memory exporter, the open-span tracker
of tests/conftest.py) is emptied during the loops so that only otel_db's state counts.
No timing assertions: speed belongs to benchmarks/.
"""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc
from collections.abc import Callable

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from otel_db import attributes as attr
from otel_db.enrichers.n_plus_one import (
    MAX_TRACKED_PARENTS,
    MAX_TRACKED_SPANS,
    NPlusOneDetector,
)
from otel_db.pipeline.build import processing_chain
from otel_db.pipeline.transaction_holding import DEFAULT_MAX_TOTAL
from otel_db.settings import Settings
from otel_db.transactions.tracker import MAX_OPEN_TRANSACTIONS, default_tracker

from .conftest import held_spans, session_stages

MB = 1024 * 1024


def _growth(total: int, window: int, step: Callable[[int], None], tidy: Callable[[], None]):
    """Traced memory after the last ``window`` steps minus after the ``window`` before.

    The first ``total - 2 * window`` steps fill every cap untraced. Capped state turns
    over (its content is always the newest entries), so the traced memory after each
    window is the cap's size; anything that grows with the step count shows as a
    difference between the two windows.
    """

    def run(start: int, stop: int) -> None:
        for i in range(start, stop):
            step(i)
            if i % 1000 == 999:
                tidy()
        tidy()
        gc.collect()

    first = total - 2 * window
    run(0, first)
    tracemalloc.start()
    try:
        run(first, first + window)
        after_first, _ = tracemalloc.get_traced_memory()
        run(first + window, total)
        after_second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return after_second - after_first, after_second


@pytest.mark.slow
def test_parents_that_never_end_keep_the_n_plus_one_state_capped(spans):
    (detector,) = session_stages(NPlusOneDetector)
    tracer = trace.get_tracer("otel_db.tests.memory")
    connection = sqlite3.connect(":memory:")

    def step(i: int) -> None:
        parent = tracer.start_span(f"request {i % 7}")  # started, never ended
        with trace.use_span(parent, end_on_exit=False):
            connection.execute("SELECT 1 AS never_ending_parent").fetchall()

    def tidy() -> None:
        spans.clear()  # the test exporter and open-span tracker, not otel_db state

    try:
        growth, live = _growth(50_000, 10_000, step, tidy)
    finally:
        connection.close()
    parents, ancestors = len(detector._parents), len(detector._ancestors)
    print(
        f"50,000 never-ended parents: N+1 state {parents} parents / {ancestors} spans, "
        f"traced {live / MB:.1f} MB, growth over the last 10,000: {growth / MB:.2f} MB"
    )
    assert parents <= MAX_TRACKED_PARENTS and ancestors <= MAX_TRACKED_SPANS
    assert growth < 2 * MB


@pytest.mark.slow
def test_transactions_that_never_end_keep_tracker_and_holding_stage_capped(spans):
    tracker = default_tracker()
    tracer = trace.get_tracer("otel_db.tests.memory")
    evicted_before = tracker.evicted

    def step(i: int) -> None:
        key = object()  # a connection the app drops without COMMIT/ROLLBACK
        transaction = tracker.begin(
            key, "BEGIN", {attr.DB_SYSTEM_NAME: "sqlite"}, make_current=False
        )
        parent = trace.set_span_in_context(transaction.root.span)
        statement = tracer.start_span(
            "SELECT t",
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes={attr.DB_SYSTEM_NAME: "sqlite", attr.DB_QUERY_TEXT: "SELECT * FROM t"},
        )
        tracker.statement_in(transaction, statement)
        statement.end()  # held by the holding stage until its transaction resolves

    try:
        growth, live = _growth(50_000, 10_000, step, spans.clear)
        open_now, held = len(tracker._open), held_spans()
    finally:
        for holder, _transaction in list(tracker._open.values()):
            key = holder()  # the tracker holds its keys weakly (or in a _Strong wrapper)
            if key is not None:
                tracker.end(key, attr.OUTCOME_ROLLED_BACK)
    print(
        f"50,000 never-ended transactions: {open_now} open, {held} statements held, "
        f"{tracker.evicted - evicted_before} ended unknown, "
        f"traced {live / MB:.1f} MB, growth over the last 10,000: {growth / MB:.2f} MB"
    )
    assert open_now <= MAX_OPEN_TRANSACTIONS
    assert held <= DEFAULT_MAX_TOTAL
    assert tracker.evicted - evicted_before >= 50_000 - MAX_OPEN_TRANSACTIONS
    assert growth < 2 * MB
    assert held_spans() == 0


class _Discard(SpanProcessor):
    def __init__(self) -> None:
        self.ended = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


@pytest.mark.slow
def test_200_000_spans_through_the_chain_leave_no_growth():
    downstream = _Discard()
    settings = Settings.from_env({})
    provider = TracerProvider()
    provider.add_span_processor(processing_chain(settings, downstream))
    tracer = provider.get_tracer("otel_db.tests.memory")
    attributes = {
        attr.DB_SYSTEM_NAME: "postgresql",
        attr.DB_QUERY_TEXT: "SELECT * FROM users WHERE id = 42",
    }

    def step(i: int) -> None:  # a request span with 9 statements under it: 10 spans
        with tracer.start_as_current_span("request"):
            for _ in range(9):
                tracer.start_span(
                    "SELECT users", kind=trace.SpanKind.CLIENT, attributes=attributes
                ).end()

    try:
        growth, live = _growth(20_000, 5_000, step, lambda: None)
    finally:
        provider.shutdown()
    print(
        f"200,000 spans: {downstream.ended} ended, growth over the last 50,000: "
        f"{growth / MB:.2f} MB (traced {live / MB:.1f} MB)"
    )
    assert downstream.ended == 200_000
    assert growth < 2 * MB
