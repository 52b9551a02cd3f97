"""Options otel_db passes to contrib instrumentors, from its own settings.

The distro's ``load_instrumentor`` merges these under the caller's keyword arguments
(the caller's win): sqlcommenter for the DB-API instrumentations. (Parameter capture
does not go through contrib: see :mod:`otel_db.instrumentation.parameter_capture`.)
"""

from __future__ import annotations

from typing import Any

from otel_db import sqlcommenter
from otel_db.settings import Settings


def contrib_options(entry_point_name: str, settings: Settings) -> dict[str, Any]:
    return sqlcommenter.instrumentor_options(entry_point_name, settings)
