"""Options otel_db passes to contrib instrumentors, from its own settings.

The distro's ``load_instrumentor`` merges these under the caller's keyword arguments
(the caller's win): sqlcommenter and parameter capture for the DB-API instrumentations.
"""

from __future__ import annotations

from typing import Any

from otel_db import sqlcommenter
from otel_db.instrumentation import parameter_capture
from otel_db.settings import Settings


def contrib_options(entry_point_name: str, settings: Settings) -> dict[str, Any]:
    return {
        **sqlcommenter.instrumentor_options(entry_point_name, settings),
        **parameter_capture.instrumentor_options(entry_point_name, settings),
    }
