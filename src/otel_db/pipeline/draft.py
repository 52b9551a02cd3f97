"""A finished span's exportable fields, copied only when an enricher changes one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status
from opentelemetry.util.types import AttributeValue

_EMPTY: Mapping[str, AttributeValue] = {}


def plain_attributes(span: ReadableSpan) -> dict[str, AttributeValue]:
    """The ended span's attributes as a plain dict that can be read at C speed.

    ``ReadableSpan.attributes`` is a proxy over the SDK's ``BoundedAttributes``, whose
    every read and copy runs Python code under a lock (copying 8 attributes costs about
    10 us). An ended span's attributes are immutable, so reading the dict it stores is
    safe; anything else falls back to the public view.
    """
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
    """

    __slots__ = ("_attributes", "_events", "_handed_over", "_name", "_original", "_status", "span")

    def __init__(self, span: ReadableSpan) -> None:
        self.span = span
        self._attributes: dict[str, AttributeValue] | None = None
        self._original: Mapping[str, AttributeValue] | None = None
        # build() hands ``_attributes`` to the new span without copying; a later
        # change then copies first (copy on write).
        self._handed_over = False
        self._name: str | None = None
        self._status: Status | None = None
        self._events: tuple[Event, ...] | None = None

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        """The attributes as they stand, for reading only (write through the setters).

        This is the stored dict itself, not a ``MappingProxyType`` over it: a proxy's
        ``get`` costs four times a dict's, and enrichers read here several times per span.
        """
        if self._attributes is not None:
            return self._attributes
        if self._original is None:
            self._original = plain_attributes(self.span)
        return self._original

    def _writable(self) -> dict[str, AttributeValue]:
        if self._attributes is None:
            self._attributes = dict(plain_attributes(self.span))
        elif self._handed_over:
            self._attributes = dict(self._attributes)
            self._handed_over = False
        return self._attributes

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
        stored = getattr(self.span, "_events", None)
        if stored is None:
            return bool(self.span.events)
        return len(stored) > 0

    @property
    def changed(self) -> bool:
        return not (
            self._attributes is None
            and self._name is None
            and self._status is None
            and self._events is None
        )

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._writable()[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if not attributes:
            return
        self._writable().update(attributes)

    def remove_attribute(self, key: str) -> None:
        if key not in self.attributes:
            return
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
        if self._attributes is not None:
            attributes = self._attributes
            self._handed_over = True
        else:
            attributes = dict(plain_attributes(span))
        if type(span) is ReadableSpan:
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
            events = getattr(span, "_events", None)
            if events is None:
                events = span.events
        links = getattr(span, "_links", None)
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
