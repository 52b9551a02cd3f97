"""otel_db's OTLP span encoder produces the SDK encoder's request, byte for byte."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from otel_db.export import otlp_encoding
from otel_db.export.otlp_encoding import SpanEncoder


def _sdk_bytes(spans) -> bytes:
    return encode_spans(spans).SerializeToString(deterministic=True)


def _our_bytes(encoder: SpanEncoder, spans) -> bytes:
    return encoder.request(spans).SerializeToString(deterministic=True)


def _recorder(resource: Resource | None = None, limits: SpanLimits | None = None):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=resource or Resource.create({"service.name": "t"}), span_limits=limits
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


REMOTE_PARENT = SpanContext(
    trace_id=0x1234,
    span_id=0x99,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "x1"), ("other", "y")]),
)


def test_every_kind_of_field_matches_the_sdk():
    provider, exporter = _recorder(limits=SpanLimits(max_span_attributes=40, max_events=2))
    tracer = provider.get_tracer("db", "1.2", schema_url="https://opentelemetry.io/schemas/1.33.0")
    twin = provider.get_tracer("db", "1.2", schema_url="https://opentelemetry.io/schemas/1.33.0")
    other = provider.get_tracer("other")
    attributes = {
        "s": "text", "empty": "", "unicode": "héllo ✓", "t": True, "f": False,
        "i": 42, "neg": -7, "big": 2**63 - 1, "small": -(2**63), "zero": 0,
        "d": 1.5, "nzero": -0.0, "inf": math.inf, "nan": math.nan,
        "strs": ("a", ""), "ints": (1, -2), "floats": (0.5,), "bools": (True, False), "none": (),
        "long": "x" * 5000,
    }  # fmt: skip
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes=attributes) as root:
        root.add_event("plain")
        root.add_event("with attrs", {"k": "v", "n": 3}, timestamp=123)
        root.add_event("third (dropped)")
        with twin.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
        with other.start_as_current_span("producer", kind=SpanKind.PRODUCER):
            pass
    linked = tracer.start_span(
        "remote child",
        context=set_span_in_context(NonRecordingSpan(REMOTE_PARENT)),
        kind=SpanKind.CONSUMER,
        links=[Link(REMOTE_PARENT, {"why": "batch"}), Link(root.get_span_context())],
    )
    linked.set_status(Status(StatusCode.OK))
    linked.end()
    tracer.start_span("internal, no attributes").end()
    spans = exporter.get_finished_spans()
    assert _our_bytes(SpanEncoder(), spans) == _sdk_bytes(spans)


def test_spans_of_two_resources_are_grouped_as_the_sdk_groups_them():
    first, first_spans = _recorder(Resource.create({"service.name": "a"}))
    second, second_spans = _recorder(Resource.create({"service.name": "b"}, "https://s/1"))
    for provider in (first, second, first):
        provider.get_tracer("x").start_span("s").end()
    spans = [*first_spans.get_finished_spans(), *second_spans.get_finished_spans()]
    spans = [spans[0], spans[2], spans[1]]  # interleaved
    assert _our_bytes(SpanEncoder(), spans) == _sdk_bytes(spans)


def test_the_attribute_cache_gives_the_same_bytes_the_second_time():
    provider, exporter = _recorder()
    tracer = provider.get_tracer("x")
    for _ in range(3):
        tracer.start_span("q", attributes={"db.system.name": "postgresql", "n": 1}).end()
    spans = exporter.get_finished_spans()
    encoder = SpanEncoder()
    assert _our_bytes(encoder, spans[:1]) == _sdk_bytes(spans[:1])
    assert _our_bytes(encoder, spans) == _sdk_bytes(spans)


def test_values_it_does_not_handle_fall_back_to_the_sdk_encoder(caplog):
    provider, exporter = _recorder()
    provider.get_tracer("x").start_span("huge", attributes={"ok": 1, "huge": 2**70}).end()
    spans = exporter.get_finished_spans()
    with pytest.raises(otlp_encoding.Unsupported):
        SpanEncoder().encode(spans)
    assert _our_bytes(SpanEncoder(), spans) == _sdk_bytes(spans)  # the SDK drops "huge"


_scalar = st.one_of(
    st.text(max_size=30),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)
_value = st.one_of(
    _scalar,
    st.lists(st.text(max_size=5), max_size=3).map(tuple),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=3).map(tuple),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.text(min_size=1, max_size=12), _value, max_size=8), max_size=5))
def test_random_attributes_match_the_sdk(attribute_sets):
    provider, exporter = _recorder()
    tracer = provider.get_tracer("x")
    for attributes in attribute_sets:
        tracer.start_span("s", attributes=attributes).end()
    spans = exporter.get_finished_spans()
    encoder = SpanEncoder()
    assert _our_bytes(encoder, spans) == _sdk_bytes(spans)
    assert _our_bytes(encoder, spans) == _sdk_bytes(spans)  # again, from the cache


@pytest.mark.shortcut
def test_only_the_sdk_grpc_exporter_is_switched():
    grpc_exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:4317", insecure=True)
    try:
        assert otlp_encoding.use_for(grpc_exporter) is grpc_exporter
        assert grpc_exporter._translate_data.__self__.__class__ is SpanEncoder
    finally:
        grpc_exporter.shutdown()

    class Custom(OTLPSpanExporter):
        pass

    custom = Custom(endpoint="http://127.0.0.1:4317", insecure=True)
    try:
        otlp_encoding.use_for(custom)
        assert "_translate_data" not in vars(custom)
    finally:
        custom.shutdown()
    memory = InMemorySpanExporter()
    assert otlp_encoding.use_for(memory) is memory and "_translate_data" not in vars(memory)
