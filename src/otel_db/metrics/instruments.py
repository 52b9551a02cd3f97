"""The metric instruments, one set per meter provider.

The process's set uses the global meter provider (the configurator builds it from
``OTEL_METRICS_EXPORTER``); it is created lazily at the first pool event, and the API's
proxy meter binds it to the real provider whenever that is set. Tests add a set bound to
their own provider with :func:`add_recorder`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from otel_db import attributes as attr
from otel_db.metrics import export_state, pool_registry
from otel_db.metrics.shared_histogram import SharedAttributesHistogram
from otel_db.version import __version__

#: The contract's buckets for ``db.client.operation.duration`` (seconds).
OPERATION_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
#: Connection wait/use/create times are short: finer low buckets (seconds).
CONNECTION_TIME_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 10)

STATE = "db.client.connection.state"


class DbClientMetrics:
    """``db.client.*`` instruments on one meter provider."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("otel_db", __version__, meter_provider)
        self.operation_duration = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations.",
            explicit_bucket_boundaries_advisory=list(OPERATION_DURATION_BUCKETS),
        )
        self.wait_time = meter.create_histogram(
            "db.client.connection.wait_time",
            unit="s",
            description="The time it took to obtain an open connection from the pool.",
            explicit_bucket_boundaries_advisory=list(CONNECTION_TIME_BUCKETS),
        )
        self.use_time = meter.create_histogram(
            "db.client.connection.use_time",
            unit="s",
            description="The time between borrowing a connection and returning it to the pool.",
            explicit_bucket_boundaries_advisory=list(CONNECTION_TIME_BUCKETS),
        )
        self.create_time = meter.create_histogram(
            "db.client.connection.create_time",
            unit="s",
            description="The time it took to create a new connection.",
            explicit_bucket_boundaries_advisory=list(CONNECTION_TIME_BUCKETS),
        )
        # The same histograms, for attribute dicts built once and never mutated (per pool,
        # per pool and command): recorded without the SDK's per-call copies and hashing.
        self.operation_duration_shared = SharedAttributesHistogram(self.operation_duration)
        self.wait_time_shared = SharedAttributesHistogram(self.wait_time)
        self.use_time_shared = SharedAttributesHistogram(self.use_time)
        self.timeouts = meter.create_counter(
            "db.client.connection.timeouts",
            unit="{timeout}",
            description="The number of connection timeouts that have occurred trying to "
            "obtain a connection from the pool.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[_connection_count],
            unit="{connection}",
            description="The number of connections that are currently in the state "
            "described by the state attribute.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            callbacks=[_field("max")],
            unit="{connection}",
            description="The maximum number of open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.idle.max",
            callbacks=[_field("idle_max")],
            unit="{connection}",
            description="The maximum number of idle open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.pending_requests",
            callbacks=[_field("pending")],
            unit="{request}",
            description="The number of current pending requests for an open connection.",
        )


def _name(name: str) -> dict[str, Any]:
    return {attr.DB_CLIENT_CONNECTION_POOL_NAME: name}


def _connection_count(options: CallbackOptions) -> Iterable[Observation]:
    for state in pool_registry.states():
        yield Observation(state.used, {**_name(state.name), STATE: "used"})
        yield Observation(state.idle, {**_name(state.name), STATE: "idle"})


def _field(field: str) -> Any:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for state in pool_registry.states():
            value = getattr(state, field)
            if value is not None:
                yield Observation(value, _name(state.name))

    return observe


_lock = threading.Lock()
_default: DbClientMetrics | None = None
_extra: list[DbClientMetrics] = []
#: ``(_default, *_extra)``, rebuilt when either changes: the hot path reads it as is.
_all: tuple[DbClientMetrics, ...] | None = None


def recorders() -> tuple[DbClientMetrics, ...]:
    """The process's instruments (created on first use) and any added ones.

    When the process exports no metrics (:mod:`otel_db.metrics.export_state`) the
    process's set is never created: only added instruments, usually none, so callers
    loop over nothing and record nothing.
    """
    global _default, _all
    found = _all
    if found is not None:
        return found
    with _lock:
        if not export_state.metrics_exported():
            _all = tuple(_extra)
            return _all
        if _default is None:
            _default = DbClientMetrics()
        _all = (_default, *_extra)
        return _all


def _rebuild() -> None:
    """Recompute :data:`_all` at the next :func:`recorders` (under ``_lock``)."""
    global _all
    _all = None


def add_recorder(meter_provider: metrics.MeterProvider) -> DbClientMetrics:
    """Also record into ``meter_provider`` (tests: a provider with an in-memory reader)."""
    recorder = DbClientMetrics(meter_provider)
    with _lock:
        _extra.append(recorder)
        _rebuild()
    return recorder


def remove_recorder(recorder: DbClientMetrics) -> None:
    with _lock:
        if recorder in _extra:
            _extra.remove(recorder)
        _rebuild()
