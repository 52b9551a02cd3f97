"""InternedAttributesHistogram: a fresh-but-equal attributes dict per call (contrib's DB-API
histograms) is recorded exactly as Histogram.record would record it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_db.metrics import interned_histogram
from otel_db.metrics.interned_histogram import (
    InternedAttributesHistogram,
    intern_contrib_histograms,
)
from tests.unit.test_shared_histogram import GET, VALUES, _histogram, _points, _provider


def _pair():
    reader_a, reader_b = InMemoryMetricReader(), InMemoryMetricReader()
    interned = InternedAttributesHistogram(_histogram(_provider([reader_a])))
    public = _histogram(_provider([reader_b]))
    return interned, public, reader_a, reader_b


@pytest.mark.shortcut
def test_new_equal_dicts_per_call_record_what_the_public_path_records():
    interned, public, reader_a, reader_b = _pair()
    for value in VALUES:
        interned.record(value, attributes=dict(GET))  # a new dict per call, as contrib does
        public.record(value, attributes=dict(GET))
        failed = {**GET, "error.type": "UniqueViolation"}
        interned.record(value, attributes=failed)
        public.record(value, attributes=failed)
    assert len(interned._interned) == 2
    assert len(interned._shared._bound) == 2  # both sets took the shortcut
    assert _points(reader_a) == _points(reader_b)


def test_the_callers_dict_can_change_after_the_call():
    interned, public, reader_a, reader_b = _pair()
    attributes = dict(GET)
    interned.record(0.002, attributes)
    public.record(0.002, dict(attributes))
    attributes["db.operation.name"] = "SET"  # must not rename what was recorded
    (kept,) = interned._interned.values()
    assert kept is not attributes and kept == GET
    interned.record(0.003, dict(GET))
    public.record(0.003, dict(GET))
    assert _points(reader_a) == _points(reader_b)


def test_unhashable_values_a_context_and_sets_beyond_the_cap_take_the_public_path(monkeypatch):
    monkeypatch.setattr(interned_histogram, "MAX_INTERNED_SETS", 2)
    interned, public, reader_a, reader_b = _pair()
    cases = [
        ({**GET, "aaa.list": ["not", "hashable"]}, None),
        (dict(GET), None),
        ({**GET, "db.operation.name": "SET"}, None),
        ({**GET, "db.operation.name": "DEL"}, None),  # third set: over the cap
        (dict(GET), object()),  # a context (exemplars) goes the public way
    ]
    for attributes, context in cases:
        interned.record(0.01, attributes, context)
        public.record(0.01, attributes)
    assert len(interned._interned) == 2
    assert _points(reader_a) == _points(reader_b)


@pytest.mark.shortcut
def test_contrib_integrations_histograms_are_wrapped_once_and_others_left_alone():
    histogram = _histogram(_provider([InMemoryMetricReader()]))
    integration = SimpleNamespace(_duration_histogram=histogram, _returned_rows_histogram=None)
    intern_contrib_histograms(integration)
    intern_contrib_histograms(integration)
    wrapped = integration._duration_histogram
    assert type(wrapped) is InternedAttributesHistogram and wrapped.histogram is histogram
    assert integration._returned_rows_histogram is None  # stable conventions off: none made
    assert wrapped.name == "db.client.operation.duration"  # other reads reach the instrument
    intern_contrib_histograms(SimpleNamespace())  # a contrib release without them: no error
