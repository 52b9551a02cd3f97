"""otel_db: an OpenTelemetry distribution for Python applications that live on their database."""

from __future__ import annotations

from otel_db.version import __version__

__all__ = ["__version__", "configure"]


def configure() -> None:
    """Set up otel_db as ``opentelemetry-instrument`` would (see :mod:`otel_db.setup`)."""
    from otel_db.setup import configure as _configure

    _configure()
