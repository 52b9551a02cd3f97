"""The version matrix: otel_db's suite on the OpenTelemetry and driver versions users get.

    nox -l                      # the sessions
    nox -s oldest               # one session (the services must run: scripts/test-services.sh)
    nox -s oldest -- tests/unit # one session, other tests
    nox                         # every session

Sessions:

- ``oldest``: every requirement at its floor in pyproject.toml (OpenTelemetry 1.45.0 /
  contrib 0.66b0, SQLAlchemy, drivers): the floors are what this session runs.
- ``latest``: what ``pip install -U otel-db[all]`` resolves today (the pins decide).
- ``newest_sdk``: ``latest``, then ``pip install -U`` of the OpenTelemetry SDK, API,
  proto and exporters as a user would do it, past the pins and even where contrib lags
  (its exact pins are broken then, as they are for that user). A release that is not
  in otel_db/compat/verified.py fails tests/unit/test_private_surface.py by name.
- ``public_paths``: ``latest`` with every private-surface shortcut forced onto its public
  path (OTEL_DB_TEST_SHORTCUTS=off), as on versions outside the verified set.

``oldest``, ``latest`` and ``public_paths`` run the whole suite; ``newest_sdk`` runs
:data:`FOCUSED` (unit tests with the private-surface contract, the metrics and export
tests, the span pipeline on real databases), unless tests are given after ``--``.
``scripts/version-matrix.sh`` is what CI runs (``latest`` is the main job's own install).

Why ``newest_sdk`` alone is focused: CI must stay well inside 90 minutes on two cores,
and every test runs once per whole-suite session. ``oldest`` changes every dependency
(SQLAlchemy, each driver, contrib) and ``public_paths`` changes the code path of every
statement, so both need the whole suite. ``newest_sdk`` differs from ``latest`` only in
the six OpenTelemetry core distributions, whose private names are exactly what
FOCUSED exercises (the private-surface contract, the histogram shortcut, the exporters,
the span pipeline). Measured (2026-12-04, 2-core machine shared with other jobs, load
average 6-8), each from a new virtualenv, install included: oldest 12 min 45 s wall /
4 min 30 s CPU (990 passed, 2 xfailed); public_paths 11 min 35 s / 4 min 54 s (980
passed, 10 skipped shortcut tests, 2 xfailed); newest_sdk on FOCUSED 58 s / 46 s (626
passed), on the whole suite 13 min 6 s / 4 min 27 s (989 passed, 2 xfailed). The main
job's whole suite takes 7.5 min wall on a machine of its own, so the matrix as CI runs
it is about 2 x 8.5 + 1 = 18 min there (25 min on the loaded machine).
"""

from __future__ import annotations

import re

import nox

nox.options.sessions = ["oldest", "latest", "newest_sdk", "public_paths"]
nox.options.error_on_missing_interpreters = True

#: Every requirement at the floor pyproject.toml declares.
OLDEST = [
    "opentelemetry-api==1.45.0",
    "opentelemetry-sdk==1.45.0",
    "opentelemetry-proto==1.45.0",
    "opentelemetry-exporter-otlp-proto-common==1.45.0",
    "opentelemetry-exporter-otlp-proto-grpc==1.45.0",
    "opentelemetry-exporter-otlp-proto-http==1.45.0",
    "opentelemetry-semantic-conventions==0.66b0",
    "opentelemetry-instrumentation==0.66b0",
    "opentelemetry-instrumentation-dbapi==0.66b0",
    "opentelemetry-instrumentation-sqlite3==0.66b0",
    "opentelemetry-instrumentation-psycopg2==0.66b0",
    "opentelemetry-instrumentation-redis==0.66b0",
    "opentelemetry-instrumentation-asyncpg==0.66b0",
    "opentelemetry-instrumentation-pymysql==0.66b0",
    "opentelemetry-instrumentation-mysql==0.66b0",
    "wrapt==1.16.0",
    "sqlalchemy==2.0.30",
    "psycopg2-binary==2.9.9",
    "redis==5.3.1",
    "asyncpg==0.29.0",
    "pymysql==1.1.0",
    "mysql-connector-python==9.0.0",
    "pg8000==1.29.0",
    "alembic==1.7.2",
    "pymongo==4.9",
    "opentelemetry-instrumentation-pymongo==0.66b0",
    "boto3==1.34.0",
    "opentelemetry-instrumentation-botocore==0.66b0",
]

#: What ``pip install -U opentelemetry-sdk`` (and its siblings) upgrades for a user.
OPENTELEMETRY_CORE = [
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-proto",
    "opentelemetry-exporter-otlp-proto-common",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
]

#: The tests ``newest_sdk`` runs (see the module docstring for why).
FOCUSED = [
    "tests/unit",
    "tests/integration/test_metrics.py",
    "tests/integration/test_metrics_delta_export.py",
    "tests/integration/test_dbapi_metrics.py",
    "tests/integration/test_one_span_per_statement.py",
    "tests/integration/test_transaction_sqlite3.py",
    "tests/integration/test_n_plus_one_workloads.py",
    "tests/reliability/test_unexportable_span.py",
]


def _show_versions(session: nox.Session) -> None:
    session.run(
        "python",
        "-c",
        "from otel_db.compat import verified; "
        "print('installed:', ', '.join(f'{k} {v}' for k, v in verified.installed().items())); "
        "print('unverified:', verified.unverified() or 'none')",
    )


def _pytest(session: nox.Session, default: list[str]) -> None:
    _show_versions(session)
    session.run("python", "-m", "pytest", "-q", *(session.posargs or default))


def _require_newest_sdk(session: nox.Session) -> None:
    """Stops the session unless the installed SDK is the newest one the index offers."""
    listing = session.run(
        "python", "-m", "pip", "index", "versions", "opentelemetry-sdk", silent=True
    )
    found = re.search(r"opentelemetry-sdk \(([^)]+)\)", listing or "")
    installed = session.run(
        "python",
        "-c",
        "from importlib.metadata import version; print(version('opentelemetry-sdk'))",
        silent=True,
    )
    newest, installed = (found.group(1) if found else "?"), (installed or "").strip()
    session.log(f"opentelemetry-sdk: installed {installed}, newest on the index {newest}")
    if installed != newest:
        session.error(f"opentelemetry-sdk {installed} installed, the index has {newest}")


@nox.session
def oldest(session: nox.Session) -> None:
    session.install("-e", ".[test]", *OLDEST)
    _pytest(session, ["tests"])


@nox.session
def latest(session: nox.Session) -> None:
    session.install("-U", "-e", ".[test]")
    _pytest(session, ["tests"])


@nox.session
def newest_sdk(session: nox.Session) -> None:
    session.install("-U", "-e", ".[test]")
    # As a user does it: no otel-db on the command line, so its pins are not consulted.
    session.install("-U", *OPENTELEMETRY_CORE)
    _require_newest_sdk(session)
    _pytest(session, FOCUSED)


@nox.session
def public_paths(session: nox.Session) -> None:
    session.install("-U", "-e", ".[test]")
    session.env["OTEL_DB_TEST_SHORTCUTS"] = "off"
    _pytest(session, ["tests"])
