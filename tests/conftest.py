"""Fixtures shared by the whole suite.

One TracerProvider for the session, running the real otel_db processing chain in front
of an in-memory exporter, with the instrumentations active exactly as the launcher
activates them. Tests that need the launcher itself, or other settings for the global
set-up, run a subprocess instead.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import settings as hypothesis_settings
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_db.distro import apply_environment_defaults
from otel_db.pipeline.build import processing_chain
from otel_db.pipeline.db_span import db_system
from otel_db.settings import Settings
from tests.free_ports import free_port as free_port  # re-exported for the tests

POSTGRES_URL = os.environ.get(
    "OTEL_DB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("OTEL_DB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MARIADB_URL = os.environ.get("OTEL_DB_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test")


def _mariadb_params(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/") or "test",
    }


# Property tests are derandomized by default, so a failure in CI reproduces anywhere,
# and have no deadline (a wall-time limit: a loaded machine must not fail them);
# HYPOTHESIS_PROFILE=explore draws new examples on each run.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
hypothesis_settings.register_profile("explore", derandomize=False, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Connection keywords for pymysql and mysql-connector, from ``OTEL_DB_TEST_MARIADB_URL``.
MARIADB = _mariadb_params(MARIADB_URL)
MARIADB_SQLALCHEMY_URL = "mysql+pymysql://" + MARIADB_URL.split("://", 1)[1]

#: Settings of the session-wide pipeline; tests rely on these values.
SESSION_SETTINGS = {"OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS": "200"}


#: Values tests put into statements, parameters and errors. Nothing the session pipeline
#: exports may contain one, whatever test sent it: sanitizing is on by default.
CANARIES = ("hunter2", "alice@example.com", "alice.canary@example.com", "918273", "s3cr3t-t0ken")


#: A W3C span id or trace id in lowercase hex, as otel_db writes ids into attributes.
_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")


def _texts(value: object) -> list[str]:
    """An attribute value as the texts a literal could hide in.

    A measured number (a wait time of 0.0123230001918273 s) or a random id (span id
    c3fea20966918273) can contain a canary's digits by chance, so those are only compared
    whole: a leaked literal keeps its value, a measurement or an id does not come out
    equal to it.
    """
    if isinstance(value, str):
        if _ID.fullmatch(value):  # a span or trace id (otel_db.transaction.id): random hex
            return [f"\x00{value}\x00"]
        return [value]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _texts(item)]
    return [f"\x00{value}\x00"]  # delimited: a canary matches only the whole number


def leaks(canary: str, field: str) -> bool:
    """Whether ``field`` (from :func:`exported_fields`) carries ``canary``."""
    if field.startswith("\x00"):  # a number: only the whole value counts
        return field == f"\x00{canary}\x00"
    return canary in field


def exported_fields(span: ReadableSpan) -> list[str]:
    """Every text of a span that leaves the process: name, status, attributes, events."""
    fields = [span.name, span.status.description or ""]
    for key, value in (span.attributes or {}).items():
        fields += [key, *_texts(value)]
    for event in span.events:
        fields.append(event.name)
        for key, value in (event.attributes or {}).items():
            fields += [key, *_texts(value)]
    return fields


class CanaryScan(SpanProcessor):
    """Checks every span the session pipeline exports for a canary value."""

    def __init__(self, downstream: SpanProcessor) -> None:
        self.downstream = downstream
        self.leaks: list[str] = []
        self.scanned = 0

    def on_start(self, span: Span, parent_context: object = None) -> None:
        self.downstream.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.scanned += 1
        for field in exported_fields(span):
            for canary in CANARIES:
                if leaks(canary, field) and len(self.leaks) < 20:
                    self.leaks.append(f"{canary!r} in span {span.name!r}: {field[:200]!r}")
        self.downstream.on_end(span)

    def shutdown(self) -> None:
        self.downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.downstream.force_flush(timeout_millis)


class OpenSpanTracker(SpanProcessor):
    """Remembers spans that started and have not ended: a leak shows up here."""

    def __init__(self) -> None:
        self.open: dict[int, str] = {}

    def on_start(self, span: Span, parent_context: object = None) -> None:
        self.open[span.context.span_id] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        self.open.pop(span.context.span_id, None)


class SpanCapture:
    """The spans the session pipeline finished, as the exporter would receive them."""

    def __init__(
        self, exporter: InMemorySpanExporter, settings: Settings, tracker: OpenSpanTracker
    ) -> None:
        self.exporter = exporter
        self.settings = settings
        self.tracker = tracker

    def clear(self) -> None:
        self.exporter.clear()
        self.tracker.open.clear()

    def open_spans(self) -> list[str]:
        """Names of spans started since the last clear that have not ended."""
        return sorted(self.tracker.open.values())

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def db_spans(self) -> list[ReadableSpan]:
        return [span for span in self.finished() if db_system(span.attributes) is not None]


def _instrument_everything() -> None:
    from otel_db.instrumentation.asyncpg import AsyncpgStatementInstrumentor
    from otel_db.instrumentation.botocore import BotocoreStatementInstrumentor
    from otel_db.instrumentation.connect_spans import ConnectSpanInstrumentor
    from otel_db.instrumentation.mysql_connector import MySQLConnectorStatementInstrumentor
    from otel_db.instrumentation.pg8000 import Pg8000Instrumentor
    from otel_db.instrumentation.psycopg2 import Psycopg2StatementInstrumentor
    from otel_db.instrumentation.pymongo import PymongoStatementInstrumentor
    from otel_db.instrumentation.redis import RedisStatementInstrumentor
    from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor
    from otel_db.instrumentation.sqlite3 import SQLite3StatementInstrumentor
    from otel_db.instrumentation.statement_results import StatementResultInstrumentor
    from otel_db.migrations.alembic_revisions import AlembicRevisionInstrumentor

    for instrumentor in (
        SQLAlchemyStatementInstrumentor(),
        SQLite3StatementInstrumentor(),
        Psycopg2StatementInstrumentor(),
        RedisStatementInstrumentor(),
        AsyncpgStatementInstrumentor(),
        ConnectSpanInstrumentor(),
        StatementResultInstrumentor(),
        Pg8000Instrumentor(),
        MySQLConnectorStatementInstrumentor(),
        AlembicRevisionInstrumentor(),
        PymongoStatementInstrumentor(),
        BotocoreStatementInstrumentor(),
    ):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(skip_dep_check=True)


#: ``off``: every private-surface shortcut takes its public path for the whole session
#: (the version matrix's ``public_paths`` session; see otel_db.compat.verified).
SHORTCUTS = os.environ.get("OTEL_DB_TEST_SHORTCUTS", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHORTCUTS != "off":
        return
    skip = pytest.mark.skip(reason="asserts a shortcut itself; OTEL_DB_TEST_SHORTCUTS=off")
    for item in items:
        if item.get_closest_marker("shortcut"):
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _shortcut_gates() -> Iterator[None]:
    from otel_db.compat import verified

    with verified.forced(False if SHORTCUTS == "off" else None):
        yield


@pytest.fixture(scope="session")
def otel_session() -> Iterator[SpanCapture]:
    apply_environment_defaults(os.environ)  # semconv opt-in, as the launcher does
    settings = Settings.from_env(SESSION_SETTINGS)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-db-tests"}))
    tracker = OpenSpanTracker()
    provider.add_span_processor(tracker)
    scan = CanaryScan(SimpleSpanProcessor(exporter))
    provider.add_span_processor(processing_chain(settings, scan))
    trace.set_tracer_provider(provider)
    _instrument_everything()
    yield SpanCapture(exporter, settings, tracker)
    provider.shutdown()
    # The whole suite's exports, scanned: a literal that leaked in any test fails the run.
    if scan.leaks:
        pytest.fail("values leaked into exported spans:\n" + "\n".join(scan.leaks))


@pytest.fixture
def spans(otel_session: SpanCapture) -> Iterator[SpanCapture]:
    """The session pipeline's exporter, emptied before the test."""
    otel_session.clear()
    yield otel_session
    otel_session.clear()


@pytest.fixture(autouse=True)
def _no_span_left_current() -> Iterator[None]:
    """Fails a test that leaves a span attached as current: the app's next span would get
    a stale parent (a leaked context is an instrumentation bug, never the app's)."""
    yield
    leaked = trace.get_current_span()
    if leaked.get_span_context().is_valid:
        name = getattr(leaked, "name", "?")
        pytest.fail(f"a span is still current after the test: {name!r}")


@pytest.fixture(scope="session")
def ferretdb_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """FerretDB v1.24.2 (``scripts/stack.sh build``) on a free port, SQLite backend in a
    temporary directory, for the whole session. No skip: not built is a failure."""
    from tests.support.nosql_servers import ferretdb

    try:
        server = ferretdb(tmp_path_factory.mktemp("ferretdb"))
        uri = server.__enter__()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield uri
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server (``moto[server]``, the DynamoDB HTTP API) on a free port, for the
    whole session; yields its endpoint URL."""
    from tests.support.nosql_servers import moto_server

    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url
