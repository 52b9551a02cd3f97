"""The ``otel-db`` command."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

from otel_db.distro import apply_environment_defaults
from otel_db.settings import Settings
from otel_db.version import __version__


def _effective_settings() -> dict[str, object]:
    environ = dict(os.environ)
    apply_environment_defaults(environ)
    settings = Settings.from_env(environ)
    shown: dict[str, object] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        shown[field.name] = sorted(value) if isinstance(value, frozenset) else value
    standard = (
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SEMCONV_STABILITY_OPT_IN",
        "OTEL_TRACES_SAMPLER",
    )
    shown["environment"] = {name: environ.get(name) for name in standard}
    return shown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="otel-db", description="otel_db: database observability for OpenTelemetry."
    )
    parser.add_argument("--version", action="version", version=f"otel-db {__version__}")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("settings", help="print the effective settings as JSON")
    args = parser.parse_args(argv)
    if args.command == "settings":
        json.dump(_effective_settings(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
