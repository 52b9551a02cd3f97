"""The SDK configurator: the standard set-up, with the otel_db span pipeline in front."""

from __future__ import annotations

import logging
import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from otel_db.pipeline.build import ProviderPipeline
from otel_db.resource import distro_resource_attributes
from otel_db.settings import Settings, current_settings

_logger = logging.getLogger(__name__)


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
            kwargs.setdefault("export_span_processor", pipeline.for_exporter)
            super()._configure(**kwargs)
            if kwargs["export_span_processor"] == pipeline.for_exporter:
                # Exporter or not (OTEL_TRACES_EXPORTER=none), one enrichment stage.
                pipeline.complete(trace.get_tracer_provider())
            OtelDbConfigurator._configured_with = settings

    @classmethod
    def configured_settings(cls) -> Settings | None:
        """The settings the process was configured with, or None before configuration."""
        return cls._configured_with
