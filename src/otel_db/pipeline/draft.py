"""A finished span's exportable fields, copied only when an enricher changes one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status
from opentelemetry.util.types import AttributeValue

_EMPTY: Mapping[str, AttributeValue] = {}


class SpanDraft:
    """What the exporters will receive for one ended span.

    The SDK freezes a span before processors see it end, so enrichers write here and
    the stage builds a new ``ReadableSpan`` only when something changed: most spans
    (non-database ones) pass through without a copy.
    """

    __slots__ = ("_attributes", "_events", "_name", "_status", "span")

    def __init__(self, span: ReadableSpan) -> None:
        self.span = span
        self._attributes: dict[str, AttributeValue] | None = None
        self._name: str | None = None
        self._status: Status | None = None
        self._events: tuple[Event, ...] | None = None

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        if self._attributes is not None:
            return self._attributes
        return self.span.attributes or _EMPTY

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
    def changed(self) -> bool:
        return not (
            self._attributes is None
            and self._name is None
            and self._status is None
            and self._events is None
        )

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._attributes is None:
            self._attributes = dict(self.span.attributes or _EMPTY)
        self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if not attributes:
            return
        if self._attributes is None:
            self._attributes = dict(self.span.attributes or _EMPTY)
        self._attributes.update(attributes)

    def remove_attribute(self, key: str) -> None:
        if key not in self.attributes:
            return
        if self._attributes is None:
            self._attributes = dict(self.span.attributes or _EMPTY)
        del self._attributes[key]

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
        return ReadableSpan(
            name=self.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=dict(self.attributes),
            events=tuple(self.events),
            links=tuple(span.links),
            kind=span.kind,
            status=self.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )
