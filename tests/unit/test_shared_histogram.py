"""SharedAttributesHistogram records exactly what Histogram.record would have recorded."""

from __future__ import annotations

import math
import threading

import pytest
from opentelemetry.metrics import NoOpMeter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal import _disable_meter_configurator
from opentelemetry.sdk.metrics._internal.exemplar import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import (
    DropAggregation,
    ExponentialBucketHistogramAggregation,
    View,
)

from otel_db.compat import verified
from otel_db.metrics import shared_histogram
from otel_db.metrics.shared_histogram import SharedAttributesHistogram

BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]
GET = {
    "db.system.name": "redis",
    "db.namespace": "0",
    "server.address": "127.0.0.1",
    "server.port": 6379,
    "db.operation.name": "GET",
}
SET = {**GET, "db.operation.name": "SET"}
VALUES = [0.0004, 0.002, 0.002, 0.03, 0.7, 12.0, 0.0, 0.004, 0.06, 3.0]


def _delta_reader() -> InMemoryMetricReader:
    from opentelemetry.sdk.metrics import Histogram

    return InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})


def _provider(readers, *, views=(), exemplar_filter=None, **kwargs) -> MeterProvider:
    return MeterProvider(
        metric_readers=readers,
        views=views,
        exemplar_filter=exemplar_filter or AlwaysOffExemplarFilter(),
        shutdown_on_exit=False,
        **kwargs,
    )


def _histogram(provider: MeterProvider):
    return provider.get_meter("otel_db").create_histogram(
        "db.client.operation.duration", unit="s", explicit_bucket_boundaries_advisory=BUCKETS
    )


def _points(reader) -> list[tuple]:
    """Every data point, comparable: (metric, attributes, count, sum, min, max, buckets)."""
    data = reader.get_metrics_data()
    out = []
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    buckets = getattr(point, "bucket_counts", None)
                    if buckets is None:  # exponential histogram
                        buckets = (
                            point.scale,
                            point.zero_count,
                            tuple(point.positive.bucket_counts),
                        )
                    out.append(
                        (
                            metric.name,
                            tuple(sorted(point.attributes.items())),
                            point.count,
                            round(point.sum, 12),
                            point.min,
                            point.max,
                            tuple(buckets),
                            len(getattr(point, "exemplars", ()) or ()),
                        )
                    )
    return sorted(out)


def _pair(make_readers, **provider_kwargs):
    """(shared histogram on provider A, plain histogram on provider B, readers A, B)."""
    readers_a, readers_b = make_readers(), make_readers()
    shared = SharedAttributesHistogram(_histogram(_provider(readers_a, **provider_kwargs)))
    public = _histogram(_provider(readers_b, **provider_kwargs))
    return shared, public, readers_a, readers_b


def _providers(**provider_kwargs):
    readers_a, readers_b = [InMemoryMetricReader()], [InMemoryMetricReader()]
    provider_a = _provider(readers_a, **provider_kwargs)
    provider_b = _provider(readers_b, **provider_kwargs)
    shared = SharedAttributesHistogram(_histogram(provider_a))
    return shared, _histogram(provider_b), provider_a, provider_b, readers_a, readers_b


def _record_both(shared, public, values, attributes) -> None:
    for value in values:
        shared.record(value, attributes)
        public.record(value, attributes)


def _same(readers_a, readers_b) -> None:
    for reader_a, reader_b in zip(readers_a, readers_b, strict=True):
        assert _points(reader_a) == _points(reader_b)


@pytest.mark.shortcut
def test_cumulative_reader_gets_what_the_public_path_gives():
    shared, public, readers_a, readers_b = _pair(lambda: [InMemoryMetricReader()])
    _record_both(shared, public, VALUES, GET)
    _record_both(shared, public, VALUES[:3], SET)
    assert len(shared._bound) == 2  # both attribute sets took the shortcut after one record
    _same(readers_a, readers_b)
    _record_both(shared, public, VALUES, GET)
    _same(readers_a, readers_b)


def test_delta_and_cumulative_readers_across_collections():
    shared, public, readers_a, readers_b = _pair(lambda: [InMemoryMetricReader(), _delta_reader()])
    for round_values in (VALUES, VALUES[2:7], [], VALUES[::-1]):
        _record_both(shared, public, round_values, GET)
        _same(readers_a, readers_b)


def test_views_filtering_keys_renaming_and_other_aggregations():
    views = [
        View(instrument_name="db.client.operation.duration", attribute_keys={"db.operation.name"}),
        View(
            instrument_name="db.client.operation.duration",
            name="renamed",
            aggregation=ExponentialBucketHistogramAggregation(),
        ),
        View(
            instrument_name="db.client.operation.duration",
            name="dropped",
            aggregation=DropAggregation(),
        ),
    ]
    shared, public, readers_a, readers_b = _pair(lambda: [InMemoryMetricReader()], views=views)
    _record_both(shared, public, VALUES, GET)
    _record_both(shared, public, VALUES, SET)
    _same(readers_a, readers_b)
    names = {point[0] for point in _points(readers_a[0])}
    assert names == {"db.client.operation.duration", "renamed"}


def test_a_reader_added_later_gets_the_following_measurements():
    shared, public, provider_a, provider_b, readers_a, readers_b = _providers()
    _record_both(shared, public, VALUES, GET)
    late_a, late_b = InMemoryMetricReader(), InMemoryMetricReader()
    provider_a.add_metric_reader(late_a)
    provider_b.add_metric_reader(late_b)
    _record_both(shared, public, VALUES[:4], GET)
    _same([*readers_a, late_a], [*readers_b, late_b])
    assert _points(late_a)[0][2] == 4


def test_exemplars_on_takes_the_public_path():
    shared, public, readers_a, readers_b = _pair(
        lambda: [InMemoryMetricReader()], exemplar_filter=AlwaysOnExemplarFilter()
    )
    _record_both(shared, public, VALUES, GET)
    assert shared._bound == {}
    _same(readers_a, readers_b)


def test_negative_and_non_finite_values_are_dropped_as_the_sdk_drops_them(caplog):
    shared, public, readers_a, readers_b = _pair(lambda: [InMemoryMetricReader()])
    _record_both(shared, public, [0.01, -1.0, math.nan, math.inf, 0.02], GET)
    _same(readers_a, readers_b)
    assert _points(readers_a[0])[0][2] == 2


def test_a_disabled_meter_records_nothing():
    readers = [InMemoryMetricReader()]
    provider = _provider(readers, _meter_configurator=_disable_meter_configurator)
    shared = SharedAttributesHistogram(_histogram(provider))
    for value in VALUES:
        shared.record(value, GET)
    assert _points(readers[0]) == []


def test_instruments_that_are_not_the_sdk_histogram_are_called_as_they_are():
    shared = SharedAttributesHistogram(NoOpMeter("x").create_histogram("h"))
    for value in VALUES:
        shared.record(value, GET)
    assert shared._bound == {}


@pytest.mark.shortcut
def test_bound_attribute_sets_are_capped(monkeypatch):
    monkeypatch.setattr(shared_histogram, "MAX_BOUND", 8)
    readers = [InMemoryMetricReader()]
    shared = SharedAttributesHistogram(_histogram(_provider(readers)))
    kept = [{**GET, "db.operation.name": f"CMD{i}"} for i in range(20)]
    for attributes in kept:
        shared.record(0.01, attributes)
        shared.record(0.01, attributes)
    assert len(shared._bound) == 8
    assert sum(point[2] for point in _points(readers[0])) == 40


def test_concurrent_records_all_count():
    readers = [InMemoryMetricReader()]
    shared = SharedAttributesHistogram(_histogram(_provider(readers)))

    def work() -> None:
        for _ in range(2_000):
            shared.record(0.003, GET)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ((_name, _attrs, count, total, *_rest),) = _points(readers[0])
    assert count == 8_000
    assert total == pytest.approx(24.0)


@pytest.mark.shortcut
def test_bindings_follow_the_tables_the_installed_sdk_holds_across_collections():
    """Collecting (cumulative or delta) and recording other attribute sets: after each
    record the binding holds exactly the aggregations the SDK would record into (SDK
    1.45.2 replaces the delta reader's table on every collection)."""
    readers = [InMemoryMetricReader(), _delta_reader()]
    shared = SharedAttributesHistogram(_histogram(_provider(readers)))
    shared.record(0.01, GET)
    shared.record(0.01, GET)
    for _ in range(3):
        for reader in readers:
            reader.get_metrics_data()
        shared.record(0.02, SET)
        shared.record(0.02, GET)
        shared.record(0.02, GET)
        binding = shared._bound[id(GET)]
        again = shared_histogram._bind(shared.histogram, GET)
        assert again is not None
        assert len(again.aggregations) == len(binding.aggregations) == 2
        assert all(a is b for a, b in zip(again.aggregations, binding.aggregations, strict=True))


@pytest.mark.shortcut
def test_a_replaced_aggregation_table_is_never_recorded_into():
    """What SDK 1.45.2 does on delta collection, done by hand: the match's table is
    replaced; the shortcut notices by identity, records publicly, then rebinds."""
    shared, _public, _readers_a, _readers_b = _pair(
        lambda: [InMemoryMetricReader(), _delta_reader()]
    )
    _record_both(shared, _public, VALUES, GET)
    (binding,) = shared._bound.values()
    match, table, _aggregation, _lock = binding.entries[0]
    assert match._attributes_aggregation is table
    fresh: dict = {}  # the binding's table is orphaned
    match._attributes_aggregation = fresh
    shared.record(0.5, GET)
    shared.record(0.25, GET)
    assert shared._bound[id(GET)] is not binding
    assert shared._bound[id(GET)].entries[0][1] is fresh
    assert len(fresh) == 1
    ((_key, aggregation),) = fresh.items()
    assert aggregation in shared._bound[id(GET)].aggregations


def test_records_racing_delta_collections_all_count():
    """Delta collections swap the table while other threads record: every measurement
    is in exactly one collection."""
    readers = [_delta_reader()]
    shared = SharedAttributesHistogram(_histogram(_provider(readers)))
    done = threading.Event()
    counts: list[int] = []
    collected = threading.Condition()
    collections = [0]

    def collect() -> None:
        while not done.is_set():
            counts.extend(point[2] for point in _points(readers[0]))
            with collected:
                collections[0] += 1
                collected.notify_all()

    def work() -> None:
        for index in range(3_000):
            shared.record(0.003, GET)
            if index % 500 == 499:
                # On a loaded machine the collector may not run at all while the
                # workers hold the GIL: wait for one more collection so the race
                # really spans several of them.
                with collected:
                    seen = collections[0]
                    collected.wait_for(lambda seen=seen: collections[0] > seen, timeout=10)

    collector = threading.Thread(target=collect)
    collector.start()
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done.set()
    collector.join(timeout=60)
    counts.extend(point[2] for point in _points(readers[0]))
    assert sum(counts) == 9_000
    assert len(counts) > 1


def test_the_gate_shut_records_only_the_public_way():
    with verified.forced(False):
        shared, public, readers_a, readers_b = _pair(
            lambda: [InMemoryMetricReader(), _delta_reader()]
        )
        for round_values in (VALUES, VALUES[2:7], VALUES[::-1]):
            _record_both(shared, public, round_values, GET)
            assert shared._bound == {}
            _same(readers_a, readers_b)


@pytest.mark.shortcut
def test_an_exception_on_the_fast_path_takes_the_public_path():
    shared, public, readers_a, readers_b = _pair(lambda: [InMemoryMetricReader()])
    _record_both(shared, public, VALUES, GET)
    (binding,) = shared._bound.values()

    class Raising:
        def aggregate(self, measurement, should_sample_exemplar=True) -> None:
            raise RuntimeError("an SDK that changed underneath")

    binding.aggregations = (Raising(),)
    _record_both(shared, public, [0.5, 0.25], GET)  # never raises
    assert shared._broken and shared._bound == {}
    _same(readers_a, readers_b)


@pytest.mark.shortcut
def test_a_meter_disabled_after_binding_stops_recording():
    readers = [InMemoryMetricReader()]
    provider = _provider(readers)
    shared = SharedAttributesHistogram(_histogram(provider))
    shared.record(0.01, GET)
    shared.record(0.01, GET)
    assert shared._bound
    provider._set_meter_configurator(meter_configurator=_disable_meter_configurator)
    shared.record(0.01, GET)
    ((_name, _attrs, count, *_rest),) = _points(readers[0])
    assert count == 2
