"""Starting a CLIENT span whose attributes otel_db made itself, without re-validating them.

``Tracer.start_span`` hands the attributes to the new span's ``BoundedAttributes``, which
cleans them one by one (type checks against the ``collections.abc`` ABCs, a copy of the
mapping, a lock): about a tenth of a SQLAlchemy statement's tracing cost. otel_db's
statement and transaction spans start with attribute dicts it built from the same
template every time, and whose values it checked once (plain ``str``, ``bool``, ``int``
or ``float``, strings within the tracer's length limit). :class:`SpanStarter` starts
those spans the way the SDK's ``Tracer.start_span`` does (sampler, ids, tracer metrics,
span limits, processors' ``on_start`` with the attributes in place), and puts the
attributes into the span as the SDK would have stored them, uncleaned.

It reaches the SDK's private ``_Span`` and tracer fields, so it runs only on the verified
SDK versions (the ``sdk.trace.start_span`` shortcut), for an SDK ``Tracer`` whose sampler
passes the attributes through unchanged (the SDK's own samplers), with no more
attributes than the span may keep; everything else goes through ``Tracer.start_span``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import trace as trace_api
from opentelemetry.trace import SpanKind

from otel_db.compat.verified import shortcut

SHORTCUT: Final = "sdk.trace.start_span"
_CLIENT = SpanKind.CLIENT
_PLAIN_TYPES: Final = frozenset({str, bool, int, float})
_UNLIMITED: Final = 2**62


def _sdk() -> Any:
    from opentelemetry.sdk.trace import Tracer, _Span, sampling

    return Tracer, _Span, sampling


def _passes_attributes(sampler: Any, sampling: Any, depth: int = 0) -> bool:
    """Whether ``sampler`` returns the attributes it is given (or none, dropping): the
    SDK's static, ratio and parent-based samplers, with such delegates."""
    if depth > 4:
        return False
    kind = type(sampler)
    if kind in (sampling.StaticSampler, sampling._AlwaysOn, sampling._AlwaysOff):
        return True
    if kind in (sampling.TraceIdRatioBased,):
        return True
    if kind in (
        sampling.ParentBased,
        sampling.ParentBasedTraceIdRatio,
        sampling._ParentBasedAlwaysOn,
        sampling._ParentBasedAlwaysOff,
    ):
        delegates = (
            sampler._root,
            sampler._remote_parent_sampled,
            sampler._remote_parent_not_sampled,
            sampler._local_parent_sampled,
            sampler._local_parent_not_sampled,
        )
        return all(_passes_attributes(each, sampling, depth + 1) for each in delegates)
    return False


class SpanStarter:
    """Starts CLIENT spans for one tracer; the shortcut when it is exact, else the API.

    Callers pass what :meth:`check` said of the attribute dict's template (worked out
    once per template, not per span); ``None`` sends the span through ``start_span``.
    A tracer from the API's proxy (made before the SDK's provider was set) is followed
    to the SDK tracer it resolves to.
    """

    def __init__(self, tracer: trace_api.Tracer) -> None:
        self._tracer: Any = tracer
        self._fast = False
        self._proxy: Any = None
        self._max_attributes = 0
        self._max_length = 0
        #: The sampler found to return the attributes it is given, and one found not to.
        self._sampler: Any = None
        self._refused: Any = None
        self._span_class: Any = None
        self._sampling: Any = None
        try:
            if shortcut(SHORTCUT):
                if type(tracer) is trace_api.ProxyTracer:
                    self._proxy = tracer
                else:
                    self._adopt(tracer)
        except Exception:  # the public path then
            self._fast = False

    def _adopt(self, tracer: Any) -> None:
        sdk_tracer, span_class, sampling = _sdk()
        if type(tracer) is not sdk_tracer:
            return
        limits = tracer._span_limits
        maximum = limits.max_span_attributes
        length = limits.max_span_attribute_length
        self._max_attributes = _UNLIMITED if maximum is None else maximum
        self._max_length = _UNLIMITED if length is None else length
        self._span_class = span_class
        self._sampling = sampling
        self._tracer = tracer
        self._fast = True

    def _follow_proxy(self) -> None:
        real = getattr(self._proxy, "_real_tracer", None)
        if real is not None:
            self._proxy = None
            try:
                self._adopt(real)
            except Exception:
                self._fast = False

    @property
    def shortcut(self) -> bool:
        """Whether spans start through the shortcut (for tests)."""
        if not self._fast and self._proxy is not None:
            self._follow_proxy()
        return self._fast

    @staticmethod
    def check(attributes: Mapping[str, Any]) -> int | None:
        """The longest string value of ``attributes`` when the SDK keeps every one of
        them as given (non-empty ``str`` keys; ``str``, ``bool``, ``int`` or ``float``
        values), else None. Spans start with them through the shortcut while that is
        within the tracer's length limit (and their count within its count limit)."""
        longest = 0
        for key, value in attributes.items():
            kind = type(value)
            if type(key) is not str or not key or kind not in _PLAIN_TYPES:
                return None
            if kind is str and len(value) > longest:
                longest = len(value)
        return longest

    def start(
        self,
        name: str,
        context: Any,
        attributes: dict[str, Any],
        longest: int | None,
    ) -> trace_api.Span:
        """``tracer.start_span(name, context, kind=CLIENT, attributes=attributes)``.

        ``longest``: :meth:`check` of the attributes' template (an ``int`` value added
        since does not change it).
        """
        if not self._fast and self._proxy is not None:
            self._follow_proxy()
        tracer = self._tracer
        if (
            longest is None
            or not self._fast
            or longest > self._max_length
            or len(attributes) > self._max_attributes
        ):
            return tracer.start_span(name, context=context, kind=_CLIENT, attributes=attributes)
        sampler = tracer.sampler
        if sampler is not self._sampler:
            if sampler is self._refused or not _passes_attributes(sampler, self._sampling):
                self._refused = sampler  # asked once, not per span
                return tracer.start_span(name, context=context, kind=_CLIENT, attributes=attributes)
            self._sampler = sampler
        return self._start(tracer, sampler, name, context, attributes)

    def _start(
        self, tracer: Any, sampler: Any, name: str, context: Any, attributes: dict[str, Any]
    ) -> trace_api.Span:
        # Tracer.start_span of the verified SDK releases, for kind=CLIENT, no links, no
        # start time, record_exception and set_status_on_exception on; only the span's
        # attributes are stored without the cleaning pass.
        parent_span_context = trace_api.get_current_span(context).get_span_context()
        if parent_span_context is not None and not isinstance(
            parent_span_context, trace_api.SpanContext
        ):
            return tracer.start_span(name, context=context, kind=_CLIENT, attributes=attributes)
        if not tracer._is_enabled():
            return trace_api.NonRecordingSpan(context=parent_span_context)
        if parent_span_context is None or not parent_span_context.is_valid:
            parent_span_context = None
            trace_id = tracer.id_generator.generate_trace_id()
        else:
            trace_id = parent_span_context.trace_id
        sampling_result = sampler.should_sample(context, trace_id, name, _CLIENT, attributes, ())
        trace_flags = (
            trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED)
            if sampling_result.decision.is_sampled()
            else trace_api.TraceFlags(trace_api.TraceFlags.DEFAULT)
        )
        if parent_span_context is None:
            random_trace_id = tracer.id_generator.is_trace_id_random()
        else:
            random_trace_id = parent_span_context.trace_flags.random_trace_id
        if random_trace_id:
            trace_flags = trace_api.TraceFlags(trace_flags | trace_api.TraceFlags.RANDOM_TRACE_ID)
        span_context = trace_api.SpanContext(
            trace_id,
            tracer.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=trace_flags,
            trace_state=sampling_result.trace_state,
        )
        record_end_metrics = tracer._tracer_metrics.start_span(
            parent_span_context, sampling_result.decision
        )
        if not sampling_result.decision.is_recording():
            return trace_api.NonRecordingSpan(context=span_context)
        span = self._span_class(
            name=name,
            context=span_context,
            parent=parent_span_context,
            sampler=sampler,
            resource=tracer.resource,
            attributes=None,
            span_processor=tracer.span_processor,
            kind=_CLIENT,
            links=(),
            instrumentation_info=tracer.instrumentation_info,
            record_exception=True,
            set_status_on_exception=True,
            limits=tracer._span_limits,
            instrumentation_scope=tracer._instrumentation_scope,
            record_end_metrics=record_end_metrics,
        )
        # What BoundedAttributes stores for admitted values: the same pairs, in order.
        span._attributes._dict.update(sampling_result.attributes)
        span.start(parent_context=context)
        return span


__all__ = ["SHORTCUT", "SpanStarter"]
