"""The holding stage and the tracker, with an in-memory exporter (no database needed)."""

from __future__ import annotations

import gc
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_db import attributes as attr
from otel_db.pipeline.stage import EnrichmentStage
from otel_db.pipeline.transaction_holding import TransactionHoldingStage
from otel_db.transactions.tracker import TransactionTracker

DB = {attr.DB_SYSTEM_NAME: "postgresql"}


class Rig:
    def __init__(self, **limits) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.tracker = TransactionTracker(self.provider.get_tracer("tracker"))
        self.stage = TransactionHoldingStage(
            SimpleSpanProcessor(self.exporter), self.tracker, **limits
        )
        # As in production: the enrichment stage in front (it writes the transaction id
        # the tracker defers to the statement's end).
        self.provider.add_span_processor(EnrichmentStage([], self.stage))
        self.tracer = self.provider.get_tracer("test")

    def statement(self, key, name: str = "SELECT") -> None:
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=DB)
        self.tracker.statement_started(key, span)
        span.end()

    def outcomes(self, prefix: str = "SELECT") -> list[str | None]:
        return [
            s.attributes.get(attr.TRANSACTION_OUTCOME)
            for s in self.exporter.get_finished_spans()
            if s.name.startswith(prefix)
        ]


@pytest.fixture
def rig():
    rig = Rig()
    yield rig
    rig.provider.shutdown()


def test_statements_wait_for_commit(rig):
    key = object()
    rig.tracker.begin(key, "TRANSACTION", DB)
    rig.statement(key)
    rig.statement(key)
    assert rig.outcomes() == []
    assert rig.stage.held_count == 2
    rig.tracker.end(key, attr.OUTCOME_COMMITTED)
    assert rig.outcomes() == [attr.OUTCOME_COMMITTED] * 2
    assert rig.stage.held_count == 0


def test_savepoint_rollback_inside_commit(rig):
    key = object()
    rig.tracker.begin(key, "TRANSACTION", DB)
    rig.statement(key, "SELECT outer")
    rig.tracker.savepoint(key, "sp1")
    rig.statement(key, "SELECT inner")
    rig.tracker.end_savepoint(key, "sp1", attr.OUTCOME_ROLLED_BACK)
    rig.tracker.savepoint(key, "sp2")
    rig.statement(key, "SELECT kept")
    rig.tracker.end_savepoint(key, "sp2", attr.OUTCOME_COMMITTED)
    rig.tracker.end(key, attr.OUTCOME_COMMITTED)
    assert rig.outcomes("SELECT outer") == [attr.OUTCOME_COMMITTED]
    assert rig.outcomes("SELECT inner") == [attr.OUTCOME_ROLLED_BACK]
    assert rig.outcomes("SELECT kept") == [attr.OUTCOME_COMMITTED]
    assert rig.outcomes("SAVEPOINT") == [attr.OUTCOME_ROLLED_BACK, attr.OUTCOME_COMMITTED]


def test_released_savepoint_inside_rolled_back_transaction(rig):
    key = object()
    rig.tracker.begin(key, "TRANSACTION", DB)
    rig.tracker.savepoint(key, "sp")
    rig.statement(key)
    rig.tracker.end_savepoint(key, "sp", attr.OUTCOME_COMMITTED)
    rig.tracker.end(key, attr.OUTCOME_ROLLED_BACK)
    assert rig.outcomes() == [attr.OUTCOME_ROLLED_BACK]


def test_more_statements_than_the_cap_all_leave():
    rig = Rig(max_per_transaction=10)
    key = object()
    rig.tracker.begin(key, "TRANSACTION", DB)
    for _ in range(25):
        rig.statement(key)
    assert len(rig.outcomes()) == 15  # beyond the cap: out at once, as unknown
    assert set(rig.outcomes()) == {attr.OUTCOME_UNKNOWN}
    rig.tracker.end(key, attr.OUTCOME_COMMITTED)
    outcomes = rig.outcomes()
    assert len(outcomes) == 25
    assert outcomes.count(attr.OUTCOME_UNKNOWN) == 15
    assert outcomes.count(attr.OUTCOME_COMMITTED) == 10
    assert rig.stage.released_unknown == 15
    rig.provider.shutdown()


def test_total_cap_releases_the_oldest_transaction():
    rig = Rig(max_total=5)
    keys = [object() for _ in range(3)]
    for key in keys:
        rig.tracker.begin(key, "TRANSACTION", DB)
        for _ in range(3):
            rig.statement(key)
    assert rig.stage.held_count <= 5
    assert rig.outcomes().count(attr.OUTCOME_UNKNOWN) >= 3
    for key in keys:
        rig.tracker.end(key, attr.OUTCOME_COMMITTED)
    assert len(rig.outcomes()) == 9
    rig.provider.shutdown()


def test_age_limit_releases_without_new_spans():
    rig = Rig(max_age_seconds=0.1)
    key = object()
    rig.tracker.begin(key, "TRANSACTION", DB)
    rig.statement(key)
    deadline = time.monotonic() + 5
    while not rig.outcomes() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.outcomes() == [attr.OUTCOME_UNKNOWN]
    rig.tracker.end(key, attr.OUTCOME_COMMITTED)  # late commit: nothing left to release
    assert len(rig.outcomes()) == 1
    rig.provider.shutdown()


def test_shutdown_flushes_held_spans_as_unknown(rig):
    key = object()
    rig.tracker.begin(key, "TRANSACTION", DB, make_current=False)  # never ends
    rig.statement(key)
    rig.provider.force_flush()
    assert rig.outcomes() == [attr.OUTCOME_UNKNOWN]


def test_statement_outside_a_transaction_passes_untouched(rig):
    rig.statement(object())
    (span,) = rig.exporter.get_finished_spans()
    assert attr.TRANSACTION_ID not in span.attributes
    assert attr.TRANSACTION_OUTCOME not in span.attributes


@pytest.mark.slow
def test_memory_stays_flat_over_100000_transactions():
    rig = Rig()
    rig.stage.downstream = _Discard()

    def run(count: int) -> None:
        for _ in range(count):
            key = object()
            rig.tracker.begin(key, "TRANSACTION", DB)
            rig.statement(key)
            rig.tracker.end(key, attr.OUTCOME_COMMITTED)

    run(20_000)  # fill the bounded caches (recent resolutions) first
    gc.collect()
    objects_before = len(gc.get_objects())
    run(80_000)
    gc.collect()
    assert len(gc.get_objects()) - objects_before < 1_000
    assert rig.stage.held_count == 0
    assert rig.tracker.open_count == 0
    rig.provider.shutdown()


class _Discard(SimpleSpanProcessor):
    def __init__(self) -> None:
        pass

    def on_start(self, span, parent_context=None) -> None:
        pass

    def on_end(self, span) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
