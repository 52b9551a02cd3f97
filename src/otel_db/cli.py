"""The ``otel-db`` command.

    otel-db settings                       # the effective settings as JSON
    otel-db run [launcher options] python app.py [args]

Nothing at the top of this module imports ``opentelemetry``: ``opentelemetry.propagate``
raises at import on an unknown ``OTEL_PROPAGATORS`` name, so both commands repair the
environment before they import anything that may import it (see otel_db.launcher).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

from otel_db.launcher import hygiene_logging_muted, repair_process_environment
from otel_db.version import __version__

_STANDARD_SHOWN = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_SEMCONV_STABILITY_OPT_IN",
    "OTEL_TRACES_SAMPLER",
    "OTEL_PROPAGATORS",
)


def _effective_settings() -> dict[str, object]:
    # This process's own environment is repaired (and each repair printed on stderr),
    # as the distro repairs the app's: importing the distro imports
    # opentelemetry.propagate, which raises on an unknown OTEL_PROPAGATORS name.
    warnings = repair_process_environment(leave_repeats_to_distro=False)
    from otel_db.distro import apply_environment_defaults
    from otel_db.settings import Settings

    environ = dict(os.environ)
    with hygiene_logging_muted():  # its repairs were printed above
        apply_environment_defaults(environ)
    settings = Settings.from_env(environ)
    shown: dict[str, object] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        shown[field.name] = sorted(value) if isinstance(value, frozenset) else value
    shown["environment"] = {name: environ.get(name) for name in _STANDARD_SHOWN}
    shown["repaired"] = warnings
    return shown


def _version_line() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        launcher = f" (opentelemetry-instrument {version('opentelemetry-instrumentation')})"
    except PackageNotFoundError:
        launcher = ""
    return f"otel-db {__version__}{launcher}"


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:2] == ["run", "--version"]:
        # opentelemetry-instrument would print contrib's version, not otel_db's.
        print(_version_line())
        return 0
    if arguments[:1] == ["run"]:
        # Everything after `run` belongs to opentelemetry-instrument, untouched.
        from otel_db.launcher import run

        return run(arguments[1:]) or 0
    parser = argparse.ArgumentParser(
        prog="otel-db", description="otel_db: database observability for OpenTelemetry."
    )
    parser.add_argument("--version", action="version", version=_version_line())
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("settings", help="print the effective settings as JSON")
    commands.add_parser(
        "run",
        help="opentelemetry-instrument with bad OTEL_* values repaired first (even "
        "OTEL_PROPAGATORS); same options: otel-db run [options] python app.py",
        add_help=False,
    )
    args = parser.parse_args(arguments)
    if args.command == "settings":
        json.dump(_effective_settings(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
