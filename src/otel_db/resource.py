"""Resource attributes the distro adds to whatever the user configured."""

from __future__ import annotations

from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.version import __version__


def distro_resource_attributes() -> dict[str, AttributeValue]:
    return {
        attr.TELEMETRY_DISTRO_NAME: attr.DISTRO_NAME,
        attr.TELEMETRY_DISTRO_VERSION: __version__,
    }
