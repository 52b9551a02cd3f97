"""Whether this process exports metrics at all.

With ``OTEL_METRICS_EXPORTER=none`` the SDK's configurator sets up a meter provider
with no reader: every measurement recorded into it is work for nothing. otel_db's
configurator records here what it configured, and the statement paths then record no
measurement, create no meter and start no clock for one (``tests/integration/
test_metrics_off.py`` counts them). Instruments added for a test's own meter provider
(:func:`otel_db.metrics.instruments.add_recorder`) are still recorded into.

Before (or without) otel_db's configurator nothing is known, and metrics are assumed
exported: an application that builds its own meter provider keeps its measurements.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"

_exported = True


def metrics_exported() -> bool:
    """False only when otel_db configured the process without a metrics exporter."""
    return _exported


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The metrics exporters ``environ`` names, as the SDK's configurator reads them
    (unset, empty or ``none``: no exporter)."""
    value = environ.get(METRICS_EXPORTER, "")
    names = [name.strip() for name in value.split(",") if name.strip()]
    return [name for name in names if name.lower() != "none"]


def configured(environ: Mapping[str, str], named: Iterable[str] | None = None) -> None:
    """Called by otel_db's configurator once the SDK's providers are set up; ``named``:
    the metric exporters passed to the configurator in code, if any."""
    global _exported
    _exported = bool(exporter_names(environ)) or any(name for name in (named or ()))


def reset() -> None:
    """Back to "unknown, assume exported" (tests)."""
    global _exported
    _exported = True


def contrib_integration_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a contrib ``DatabaseApiIntegration``: when no metrics are exported
    and no meter provider was given, the API's no-op one, so contrib creates no SDK
    meter and its histograms record nothing."""
    if _exported or kwargs.get("meter_provider") is not None:
        return kwargs
    from opentelemetry.metrics import NoOpMeterProvider

    return {**kwargs, "meter_provider": NoOpMeterProvider()}


__all__ = [
    "configured",
    "contrib_integration_options",
    "exporter_names",
    "metrics_exported",
    "reset",
]
