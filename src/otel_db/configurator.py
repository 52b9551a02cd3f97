"""The SDK configurator: the standard set-up, with the otel_db span pipeline in front."""

from __future__ import annotations

import inspect
import logging
import os
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from otel_db.compat.verified import shortcut, warn_once
from otel_db.metrics import export_state
from otel_db.pipeline.build import ProviderPipeline
from otel_db.resource import distro_resource_attributes
from otel_db.settings import Settings, current_settings

_logger = logging.getLogger(__name__)


def _accepts_export_span_processor() -> bool:
    """Whether the SDK's set-up takes ``export_span_processor`` (the hook otel_db's span
    pipeline goes in by). Assumed on the verified SDK versions; on any other it is read
    from the signature, and without it the SDK's standard set-up runs as it is (spans
    exported, not enriched) after one warning."""
    if shortcut("sdk.configurator"):
        return True
    try:
        from opentelemetry.sdk._configuration import _initialize_components

        accepted = "export_span_processor" in inspect.signature(_initialize_components).parameters
    except Exception:
        accepted = False
    if not accepted:
        _logger.warning(
            "otel_db: this OpenTelemetry SDK's configurator takes no export_span_processor; "
            "spans are exported without otel_db's enrichment"
        )
    return accepted


class OtelDbConfigurator(_OTelSDKConfigurator):
    """Builds the providers once per process; configuring again is a no-op.

    The SDK reads exporters, sampler, resource and OTEL_BSP_* from the environment as
    usual; otel_db only adds its resource attributes and puts its one enrichment stage
    in front of the exporters' batch processors (in front of none when there is no
    exporter: N+1 detection and query counts do not depend on exporting).
    """

    _lock = threading.Lock()
    _configured_with: Settings | None = None

    def _configure(self, **kwargs: Any) -> None:
        with self._lock:
            if OtelDbConfigurator._configured_with is not None:
                _logger.debug("otel_db is already configured; ignoring a second configure()")
                return
            warn_once()  # one line naming installed OpenTelemetry versions not verified
            settings = kwargs.pop("settings", None) or current_settings()
            if settings.sdk_disabled:
                _logger.info("otel_db: OTEL_SDK_DISABLED is true; no telemetry is set up")
                OtelDbConfigurator._configured_with = settings
                return
            resource_attributes = dict(kwargs.pop("resource_attributes", None) or {})
            for key, value in distro_resource_attributes().items():
                resource_attributes.setdefault(key, value)
            kwargs["resource_attributes"] = resource_attributes
            pipeline = ProviderPipeline(settings)
            if _accepts_export_span_processor():
                kwargs.setdefault("export_span_processor", pipeline.for_exporter)
            super()._configure(**kwargs)
            # Before any instrumentation is installed: with no metrics exporter, none
            # of them creates a meter or records a measurement.
            export_state.configured(os.environ, kwargs.get("metric_exporter_names"))
            if kwargs.get("export_span_processor") == pipeline.for_exporter:
                # Exporter or not (OTEL_TRACES_EXPORTER=none), one enrichment stage.
                pipeline.complete(trace.get_tracer_provider())
            OtelDbConfigurator._configured_with = settings

    @classmethod
    def configured_settings(cls) -> Settings | None:
        """The settings the process was configured with, or None before configuration."""
        return cls._configured_with
