"""The distro: environment defaults and the choice of instrumentations."""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from typing import Any

from opentelemetry.environment_variables import OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_CONFIGURATOR
from opentelemetry.sdk.environment_variables import OTEL_EXPORTER_OTLP_PROTOCOL

from otel_db.env_hygiene import repair_environment
from otel_db.export.report import attach_secret_masking
from otel_db.instrumentation.contrib_dbapi import (
    normalize_contrib_operation_names,
    report_mariadb_as_mariadb,
)
from otel_db.instrumentation.contrib_options import contrib_options
from otel_db.instrumentation.selection import instrumentor_for
from otel_db.settings import current_settings

_logger = logging.getLogger(__name__)

OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
CONFIGURATOR_NAME = "otel_db"


def apply_environment_defaults(environ: MutableMapping[str, str]) -> None:
    """Fill in what otel_db needs where the user set nothing; the user's values win."""
    asked = environ.get(OTEL_TRACES_EXPORTER)
    repair_environment(environ)  # bad OTEL_* values: one warning each, never a dead SDK
    environ.setdefault(OTEL_TRACES_EXPORTER, "otlp")
    # Metrics follow traces as the user named them: a terminal-only, disabled or
    # misspelled traces set-up (repaired to the OTLP fallback) must not start pushing
    # metrics to a collector that is not there.
    traces = {name.strip().lower() for name in (asked or environ[OTEL_TRACES_EXPORTER]).split(",")}
    environ.setdefault(OTEL_METRICS_EXPORTER, "otlp" if "otlp" in traces else "none")
    environ.setdefault(OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")
    # Every histogram record on the statement path would otherwise offer an exemplar
    # (measured at ~20% of a raw redis/psycopg2 statement's traced cost); nothing in the
    # otel_db stack reads them. Users who want them set the variable.
    environ.setdefault("OTEL_METRICS_EXEMPLAR_FILTER", "always_off")
    # Stable names for database spans and for the server.* attributes on them (contrib's
    # DB-API spans take server.* from the HTTP opt-in).
    environ.setdefault(OTEL_SEMCONV_STABILITY_OPT_IN, "database,http")
    # When the stock opentelemetry-distro is installed too, its configurator may be
    # found first; naming ours keeps the otel_db pipeline in charge.
    environ.setdefault(OTEL_PYTHON_CONFIGURATOR, CONFIGURATOR_NAME)


class _CoveredConflictFilter(logging.Filter):
    """Drops the launcher's "sqlalchemy ... falls outside of that range" notice.

    contrib's SQLAlchemy instrumentation refuses SQLAlchemy 2.1 and says so, but
    otel_db's own SQLAlchemy instrumentation covers that version: the notice would tell
    the user their queries are untraced when they are traced.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("sqlalchemy only instruments")


_LOADER_LOGGER = "opentelemetry.instrumentation.auto_instrumentation._load"


class OtelDbDistro(BaseDistro):
    """Loaded by ``opentelemetry-instrument`` before the configurator and instrumentors."""

    def _configure(self, **kwargs: Any) -> None:
        # Before any exporter is built: they parse OTEL_EXPORTER_OTLP_HEADERS in their
        # constructor, and the SDK's parser warns with the whole header, secret included.
        attach_secret_masking()
        apply_environment_defaults(os.environ)
        normalize_contrib_operation_names()
        report_mariadb_as_mariadb()
        loader_logger = logging.getLogger(_LOADER_LOGGER)
        if not any(isinstance(f, _CoveredConflictFilter) for f in loader_logger.filters):
            loader_logger.addFilter(_CoveredConflictFilter())

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        """Load one instrumentation; a failing one is reported and the others still load."""
        name = entry_point.name
        try:
            instrumentor_class = instrumentor_for(
                name, entry_point.load, current_settings().disabled_instrumentations
            )
            if instrumentor_class is None:
                _logger.debug("otel_db: %s is handled by otel_db's own instrumentation", name)
                return
            instrumentor_class().instrument(
                **{**contrib_options(name, current_settings()), **kwargs}
            )
        except ModuleNotFoundError as error:
            _logger.debug("otel_db: skipping %s, its library is not installed (%s)", name, error)
        except Exception as error:
            _logger.warning(
                "otel_db: instrumentation %r failed to load and is skipped (%s: %s); "
                "the other instrumentations are active",
                name,
                type(error).__name__,
                error,
            )
