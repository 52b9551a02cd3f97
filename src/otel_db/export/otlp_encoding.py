"""OTLP span encoding that remembers the attributes it has already encoded.

The SDK's encoder builds a protobuf object per span, per attribute and per value: about
4 us per attribute and 30 us per span on the export thread, which holds the GIL while
it works, so the application's own threads wait for it (on a database-heavy service,
encoding cost more than starting and ending the spans). Database spans repeat most of
their attributes verbatim: the same system, namespace, server, pool, statement text,
summary and fingerprint, span after span. This encoder writes the OTLP wire format
directly and keeps the encoded bytes of each recently seen attribute (key and value),
so a repeated attribute costs one dictionary lookup; the request is then parsed once by
protobuf's C implementation into the message the gRPC exporter sends.

The output is the SDK encoder's, message for message (the tests compare them on every
kind of field). Anything this encoder does not handle the same way (an integer beyond
64 bits, a value type the SDK would reject, a string that is not valid UTF-8) makes it
give up on the batch, which the SDK's encoder then encodes as it always did.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from otel_db.compat.verified import shortcut

_logger = logging.getLogger(__name__)

#: Encoded attributes remembered; past it the table starts over (a workload whose
#: attribute values do not repeat gains nothing from keeping them).
MAX_CACHED_ATTRIBUTES: Final = 8192
#: Longer string values are encoded each time rather than remembered.
MAX_CACHED_VALUE_CHARS: Final = 2048

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
# Span.flags: SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, plus IS_REMOTE for remote parents.
_FLAGS_LOCAL: Final = struct.pack("<I", 0x100)
_FLAGS_REMOTE: Final = struct.pack("<I", 0x300)
_SPAN_KIND: Final = {
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
_CACHED_KINDS: Final = frozenset({str, bool, int})
_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack


class Unsupported(Exception):
    """A value this encoder does not encode exactly as the SDK does."""


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement, always ten bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): ``tag`` is ``field_number << 3 | 2``."""
    return _TAGS[tag] + _varint(len(payload)) + payload


# Tags used below, precomputed: (field number << 3) | wire type.
_TAGS: Final = {tag: _varint(tag) for tag in range(1, 256)}


def _string(tag: int, text: str) -> bytes:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise Unsupported("string is not valid UTF-8") from error
    return _field(tag, data) if data else b""


def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` message's payload."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"  # field 2 (bool), set even if false
    if isinstance(value, str):
        data = value.encode("utf-8") if value else b""
        return b"\x0a" + _varint(len(data)) + data  # field 1 (string), set even if empty
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise Unsupported("integer beyond int64")
        return b"\x18" + _varint(value)  # field 3 (int)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)  # field 4 (double)
    if isinstance(value, bytes):
        return b"\x3a" + _varint(len(value)) + value  # field 7 (bytes)
    if isinstance(value, Sequence):
        items = b"".join(_field(0x0A, _any_value(item)) for item in value)  # ArrayValue.values
        return _field(0x2A, items)  # field 5 (array)
    raise Unsupported(f"attribute value of type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message's payload."""
    return _string(0x0A, key) + _field(0x12, _any_value(value))


class SpanEncoder:
    """Encodes batches of ended spans into an ``ExportTraceServiceRequest``."""

    def __init__(self) -> None:
        self._attributes: dict[tuple[str, type, Any], bytes] = {}
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes]] = {}

    # -- attributes -------------------------------------------------------------------

    def _attribute_fields(self, tag: int, attributes: Mapping[str, Any] | None) -> bytes:
        """Every attribute as a repeated ``KeyValue`` field ``tag``."""
        if not attributes:
            return b""
        cache = self._attributes
        out = []
        for key, value in attributes.items():
            kind = type(value)
            # Floats are not remembered: 0.0 and -0.0 are equal keys with different bytes
            # (and durations, ratios rarely repeat anyway).
            if kind not in _CACHED_KINDS or (kind is str and len(value) > MAX_CACHED_VALUE_CHARS):
                out.append(_field(tag, _key_value(key, value)))
                continue
            cache_key = (key, kind, value)
            encoded = cache.get(cache_key)
            if encoded is None:
                encoded = _field(tag, _key_value(key, value))
                if len(cache) >= MAX_CACHED_ATTRIBUTES:
                    cache.clear()
                cache[cache_key] = encoded
            out.append(encoded)
        return b"".join(out)

    # -- resource and scope (few, encoded once each) -------------------------------------

    def _resource(self, resource: Any) -> bytes:
        found = self._resources.get(id(resource))
        if found is not None and found[0] is resource:
            return found[1]
        encoded = self._attribute_fields(0x0A, resource.attributes)  # Resource.attributes
        if len(self._resources) >= 64:
            self._resources.clear()
        self._resources[id(resource)] = (resource, encoded)
        return encoded

    def _scope(self, scope: Any) -> bytes:
        if scope is None:
            return b""
        found = self._scopes.get(id(scope))
        if found is not None and found[0] is scope:
            return found[1]
        encoded = (
            _string(0x0A, scope.name or "")
            + _string(0x12, scope.version or "")
            + self._attribute_fields(0x1A, scope.attributes)
        )
        if len(self._scopes) >= 256:
            self._scopes.clear()
        self._scopes[id(scope)] = (scope, encoded)
        return encoded

    # -- spans --------------------------------------------------------------------------

    def _span(self, span: ReadableSpan) -> bytes:
        context = span.get_span_context()
        parent = span.parent
        parts = [
            b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
            b"\x12\x08" + context.span_id.to_bytes(8, "big"),
        ]
        trace_state = context.trace_state
        if trace_state:
            parts.append(_string(0x1A, ",".join(f"{k}={v}" for k, v in trace_state.items())))
        if parent:
            parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
        parts.append(_string(0x2A, span.name or ""))
        parts.append(b"\x30" + _varint(_SPAN_KIND[span.kind]))
        if span.start_time:
            parts.append(b"\x39" + _pack_fixed64(span.start_time))
        if span.end_time:
            parts.append(b"\x41" + _pack_fixed64(span.end_time))
        parts.append(self._attribute_fields(0x4A, span.attributes))
        if span.dropped_attributes:
            parts.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            parts.append(_field(0x5A, self._event(event)))
        if span.dropped_events:
            parts.append(b"\x60" + _varint(span.dropped_events))
        for link in span.links:
            parts.append(_field(0x6A, self._link(link)))
        if span.dropped_links:
            parts.append(b"\x70" + _varint(span.dropped_links))
        status = span.status
        code = status.status_code.value
        parts.append(
            _field(
                0x7A,  # Span.status (15): always present, as the SDK sets it
                _string(0x12, status.description or "")
                + (b"\x18" + _varint(code) if code else b""),
            )
        )
        remote = bool(parent and parent.is_remote)
        parts.append(b"\x85\x01" + (_FLAGS_REMOTE if remote else _FLAGS_LOCAL))  # flags (16)
        return b"".join(parts)

    def _event(self, event: Any) -> bytes:
        timestamp = event.timestamp
        return (
            (b"\x09" + _pack_fixed64(timestamp) if timestamp else b"")
            + _string(0x12, event.name or "")
            + self._attribute_fields(0x1A, event.attributes)
            + (b"\x20" + _varint(event.dropped_attributes) if event.dropped_attributes else b"")
        )

    def _link(self, link: Any) -> bytes:
        context = link.context
        return (
            b"\x0a\x10"
            + context.trace_id.to_bytes(16, "big")
            + b"\x12\x08"
            + context.span_id.to_bytes(8, "big")
            + self._attribute_fields(0x22, link.attributes)
            + (b"\x28" + _varint(link.dropped_attributes) if link.dropped_attributes else b"")
            + b"\x35"
            + (_FLAGS_REMOTE if context.is_remote else _FLAGS_LOCAL)
        )

    # -- the request --------------------------------------------------------------------

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The serialized ``ExportTraceServiceRequest`` for ``spans``."""
        # Resource -> scope -> spans, in first-seen order, like the SDK's encoder. Grouped
        # by identity first (cheap: one provider's spans share both objects), then equal
        # resources and scopes are merged as the SDK's equality-keyed grouping would.
        by_identity: dict[tuple[int, int], tuple[Any, Any, list[bytes]]] = {}
        for span in spans:
            resource = span.resource
            scope = span.instrumentation_scope or None
            key = (id(resource), id(scope))
            group = by_identity.get(key)
            if group is None:
                group = by_identity[key] = (resource, scope, [])
            group[2].append(_field(0x12, self._span(span)))  # ScopeSpans.spans
        merged: list[tuple[Any, list[tuple[Any, list[bytes]]]]] = []
        for resource, scope, encoded_spans in by_identity.values():
            scopes = next((s for r, s in merged if r is resource or r == resource), None)
            if scopes is None:
                scopes = []
                merged.append((resource, scopes))
            same = next((e for sc, e in scopes if sc is scope or sc == scope), None)
            if same is None:
                scopes.append((scope, encoded_spans))
            else:
                same.extend(encoded_spans)
        out = []
        for resource, scopes in merged:
            scope_spans = []
            for scope, encoded_spans in scopes:
                schema_url = scope.schema_url if scope is not None else ""
                scope_spans.append(
                    _field(
                        0x12,  # ResourceSpans.scope_spans
                        _field(0x0A, self._scope(scope))  # ScopeSpans.scope (always present)
                        + b"".join(encoded_spans)
                        + _string(0x1A, schema_url or ""),
                    )
                )
            payload = (
                _field(0x0A, self._resource(resource))  # ResourceSpans.resource
                + b"".join(scope_spans)
                + _string(0x1A, resource.schema_url or "")
            )
            out.append(_field(0x0A, payload))  # ExportTraceServiceRequest.resource_spans
        return b"".join(out)

    def request(self, spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        """The request message for ``spans``: this encoder's, else the SDK's."""
        try:
            return ExportTraceServiceRequest.FromString(self.encode(spans))
        except Exception as error:  # any surprise: the SDK's way, unchanged
            if not isinstance(error, Unsupported):
                _logger.debug("otel_db: span encoding fell back to the SDK's", exc_info=True)
            return encode_spans(spans)


def use_for(exporter: Any) -> Any:
    """Have a gRPC OTLP span exporter encode with :class:`SpanEncoder`.

    Only the SDK's own gRPC exporter class is changed (its ``_translate_data``, the step
    that turns spans into the request, is the one thing replaced); any other exporter,
    including a subclass the application brought, is returned untouched, and so is
    every exporter when the installed exporter versions are not verified
    (:mod:`otel_db.compat.verified`): the SDK's own encoding is the public path.
    """
    if not shortcut("exporter.grpc.translate_data"):
        return exporter
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError:
        return exporter
    if type(exporter) is OTLPSpanExporter:
        exporter._translate_data = SpanEncoder().request  # type: ignore[method-assign]
    return exporter
