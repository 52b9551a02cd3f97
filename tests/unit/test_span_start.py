"""``SpanStarter``: the shortcut's spans are ``Tracer.start_span``'s, and whatever the
shortcut cannot start exactly (limits, other samplers, unchecked values) goes through
``start_span``."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind

from otel_db.compat import verified
from otel_db.pipeline.span_start import SpanStarter

ATTRIBUTES = {"db.system.name": "sqlite", "db.query.text": "SELECT 1", "n": 3, "f": 0.5, "b": True}


class _Seen(SpanProcessor):
    """What processors see: the attributes at on_start, and the ended spans."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append((span.name, dict(span.attributes)))

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class _Adding(Sampler):
    """A sampler that adds an attribute (the shortcut must not take its spans)."""

    def should_sample(self, parent_context, trace_id, name, kind=None, attributes=None, links=None):
        return SamplingResult(Decision.RECORD_AND_SAMPLE, {**(attributes or {}), "added": "yes"})

    def get_description(self) -> str:
        return "adding"


def _provider(**kwargs: Any) -> tuple[TracerProvider, _Seen]:
    provider = TracerProvider(**kwargs)
    seen = _Seen()
    provider.add_span_processor(seen)
    return provider, seen


def _comparable(span: ReadableSpan, started: dict[str, Any]) -> tuple:
    return (
        span.name,
        span.kind,
        list(span.attributes.items()),
        span.dropped_attributes,
        started,
        span.parent.span_id if span.parent else None,
        span.context.trace_flags,
        span.instrumentation_scope,
        span.resource,
    )


def _both(attributes: dict[str, Any], **provider_kwargs: Any) -> tuple[tuple, tuple, SpanStarter]:
    """The span the starter made and the one ``start_span`` made, under one parent."""
    provider, seen = _provider(**provider_kwargs)
    tracer = provider.get_tracer("tests.span_start", "1.0", schema_url="https://x/1")
    starter = SpanStarter(tracer)
    with tracer.start_as_current_span("parent") as parent:
        context = trace.set_span_in_context(parent)
        ours = starter.start("SELECT t", context, dict(attributes), SpanStarter.check(attributes))
        ours.end()
        public = tracer.start_span(
            "SELECT t", context=context, kind=SpanKind.CLIENT, attributes=dict(attributes)
        )
        public.end()
    spans = [span for span in seen.ended if span.name == "SELECT t"]
    started = [attributes for name, attributes in seen.started if name == "SELECT t"]
    assert len(spans) == 2
    provider.shutdown()
    return _comparable(spans[0], started[0]), _comparable(spans[1], started[1]), starter


@pytest.mark.shortcut
def test_the_shortcuts_span_is_start_spans_span():
    ours, public, starter = _both(ATTRIBUTES)
    assert starter.shortcut
    assert ours == public
    assert ours[4] == ATTRIBUTES  # processors see the attributes at on_start


@pytest.mark.parametrize(
    "limits",
    [SpanLimits(max_span_attributes=3), SpanLimits(max_span_attribute_length=4)],
    ids=["count", "length"],
)
def test_limits_are_honoured(limits):
    ours, public, _ = _both(ATTRIBUTES, span_limits=limits)
    assert ours == public
    assert ours[3] == (2 if limits.max_span_attributes == 3 else 0)


@pytest.mark.parametrize(
    "attributes",
    [{"list": ["a", "b"]}, {"none": None}, {"": "empty key"}, {"object": object}],
    ids=["sequence", "none", "empty-key", "object"],
)
def test_values_the_sdk_would_clean_are_not_checked(attributes):
    assert SpanStarter.check(attributes) is None
    ours, public, _ = _both({**ATTRIBUTES, **attributes})
    assert ours[:5] == public[:5]


@pytest.mark.parametrize(
    "sampler",
    [
        _Adding(),
        ParentBased(_Adding()),
        TraceIdRatioBased(1.0),
        ParentBased(TraceIdRatioBased(1.0)),
    ],
    ids=["adding", "parent-based-adding", "ratio", "parent-based-ratio"],
)
def test_samplers(sampler):
    ours, public, _ = _both(ATTRIBUTES, sampler=sampler)
    assert ours == public


def test_a_dropping_sampler_starts_no_recording_span():
    provider, seen = _provider(sampler=ALWAYS_OFF)
    starter = SpanStarter(provider.get_tracer("tests.span_start"))
    span = starter.start("x", None, dict(ATTRIBUTES), SpanStarter.check(ATTRIBUTES))
    assert not span.is_recording() and seen.started == []
    provider.shutdown()


def test_the_shut_gate_takes_start_span():
    provider, _ = _provider()
    with verified.forced(False):
        starter = SpanStarter(provider.get_tracer("tests.span_start"))
    assert not starter.shortcut
    ours, public, _ = _both(ATTRIBUTES)
    assert ours == public
    provider.shutdown()


@pytest.mark.shortcut
def test_a_proxy_tracer_is_followed_to_the_sdk_tracer(monkeypatch):
    provider, seen = _provider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)  # as before the SDK is set up
    proxy = trace.ProxyTracer("tests.span_start")
    starter = SpanStarter(proxy)
    assert not starter.shortcut  # no provider yet: the API's no-op tracer
    assert not starter.start("x", None, dict(ATTRIBUTES), 8).is_recording()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    starter.start("first", None, dict(ATTRIBUTES), 8).end()  # through the proxy
    assert starter.shortcut
    starter.start("second", None, dict(ATTRIBUTES), 8).end()
    assert [span.name for span in seen.ended] == ["first", "second"]
    assert seen.ended[0].attributes == seen.ended[1].attributes == ATTRIBUTES
    provider.shutdown()
