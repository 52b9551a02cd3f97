"""A finished span's exportable fields, copied only when an enricher changes one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanKind, Status
from opentelemetry.util.types import AttributeValue

from otel_db.compat.verified import shortcut

#: The shortcut (:mod:`otel_db.compat.verified`) that reads and writes the private fields
#: of the SDK's ``Span``/``ReadableSpan`` here, in the stage and in the holding stage.
SPAN_FIELDS = "sdk.trace.span_fields"

_EMPTY: Mapping[str, AttributeValue] = {}


def plain_attributes(span: ReadableSpan, fields: bool | None = None) -> dict[str, AttributeValue]:
    """The ended span's attributes as a plain dict that can be read at C speed.

    ``ReadableSpan.attributes`` is a proxy over the SDK's ``BoundedAttributes``, whose
    every read and copy runs Python code under a lock (copying 8 attributes costs about
    10 us). An ended span's attributes are immutable, so reading the dict it stores is
    safe; anything else falls back to the public view, and so does every span when
    ``fields`` is false (by default: when the SDK version is not verified).
    """
    if not (shortcut(SPAN_FIELDS) if fields is None else fields):
        return dict(span.attributes or _EMPTY)
    stored = getattr(span, "_attributes", None)
    inner = getattr(stored, "_dict", None)
    if type(inner) is dict:
        return inner
    if type(stored) is dict:
        return stored
    return dict(span.attributes or _EMPTY)


class SpanDraft:
    """What the exporters will receive for one ended span.

    The SDK freezes a span before processors see it end, so enrichers write here and
    the stage builds a new ``ReadableSpan`` only when something changed: most spans
    (non-database ones) pass through without a copy.

    ``attributes``, ``span_id`` and ``kind`` are plain fields, read once from the span
    (enrichers read them several times per span; the SDK's properties cost more than
    the enrichers' own work). ``attributes`` is for reading only: it is the ended span's
    own dict until the first write through the setters replaces it with a copy.
    """

    __slots__ = (
        "_copied",
        "_events",
        "_fields",
        "_handed_over",
        "_name",
        "_status",
        "attributes",
        "kind",
        "span",
        "span_id",
    )

    def __init__(
        self,
        span: ReadableSpan,
        span_id: int | None = None,
        kind: SpanKind | None = None,
        fields: bool | None = None,
    ) -> None:
        self.span = span
        # The SDK's private span fields may be read and written (verified SDK only).
        self._fields = shortcut(SPAN_FIELDS) if fields is None else fields
        if span_id is None:
            context = span.context
            span_id = context.span_id if context is not None else 0
        self.span_id: int = span_id
        self.kind: SpanKind = span.kind if kind is None else kind
        self.attributes: Mapping[str, AttributeValue] = plain_attributes(span, self._fields)
        self._copied = False
        # build() hands the copy to the new span without copying again; a later change
        # then copies first (copy on write).
        self._handed_over = False
        self._name: str | None = None
        self._status: Status | None = None
        self._events: tuple[Event, ...] | None = None

    def _writable(self) -> dict[str, AttributeValue]:
        if not self._copied or self._handed_over:
            self.attributes = dict(self.attributes)
            self._copied = True
            self._handed_over = False
        return self.attributes  # type: ignore[return-value]

    @property
    def name(self) -> str:
        return self._name if self._name is not None else self.span.name

    @property
    def status(self) -> Status:
        return self._status if self._status is not None else self.span.status

    @property
    def events(self) -> Sequence[Event]:
        return self._events if self._events is not None else self.span.events

    @property
    def has_events(self) -> bool:
        """Whether the span has events, without copying them (``span.events`` copies)."""
        if self._events is not None:
            return bool(self._events)
        stored = getattr(self.span, "_events", None) if self._fields else None
        if stored is None:
            return bool(self.span.events)
        return len(stored) > 0

    @property
    def changed(self) -> bool:
        return self._copied or not (
            self._name is None and self._status is None and self._events is None
        )

    def writable_attributes(self) -> dict[str, AttributeValue]:
        """The draft's own copy of the attributes, to change in place."""
        return self._writable()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._writable()[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if not attributes:
            return
        self._writable().update(attributes)

    def remove_attribute(self, key: str) -> None:
        if key in self.attributes:
            del self._writable()[key]

    def rename(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Status) -> None:
        self._status = status

    def replace_events(self, events: Sequence[Event]) -> None:
        self._events = tuple(events)

    def build(self) -> ReadableSpan:
        """The span to hand downstream: the original when nothing changed."""
        if not self.changed:
            return self.span
        span = self.span
        if self._copied:
            attributes = self.attributes
            self._handed_over = True
        else:
            attributes = dict(self.attributes)
        fields = self._fields
        if fields and type(span) is ReadableSpan:
            # The SDK's own ended span (the usual case): copy its fields at C speed and
            # change the ones enriched. Its event and link lists never change again, so
            # they are shared (the public properties would copy them into tuples).
            rebuilt = ReadableSpan.__new__(ReadableSpan)
            fields = rebuilt.__dict__
            fields.update(span.__dict__)
            fields["_attributes"] = attributes
            if self._name is not None:
                fields["_name"] = self._name
            if self._status is not None:
                fields["_status"] = self._status
            if self._events is not None:
                fields["_events"] = self._events
            return rebuilt
        # An ended span's event and link lists never change again: share them (the
        # public properties copy them into tuples, and would drop the dropped counts).
        events = self._events
        if events is None:
            events = getattr(span, "_events", None) if fields else None
            if events is None:
                events = span.events
        links = getattr(span, "_links", None) if fields else None
        if links is None:
            links = span.links
        return ReadableSpan(
            name=self._name if self._name is not None else span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=events,
            links=links,
            kind=span.kind,
            status=self._status if self._status is not None else span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
