"""An exception inside an otel_db enricher or statement hook never reaches the app.

Injected into the REAL session pipeline (the SQLAlchemy listener and the enrichment
stage the launcher builds): the statement still runs and returns its rows, its span is
still exported with every other enrichment, and each failure is logged once however
many statements hit it.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from opentelemetry import trace

from otel_db import attributes as attr
from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor
from otel_db.instrumentation.statement_hooks import StatementHooks
from otel_db.pipeline.enricher import SpanEnricher
from otel_db.pipeline.stage import EnrichmentStage, HookTable


class _BrokenEnricher(SpanEnricher):
    name = "containment-test broken enricher"

    def on_start(self, span, parent_context):
        raise RuntimeError("broken on_start")

    def on_end(self, draft):
        raise RuntimeError("broken on_end")

    def on_client_end(self, span, span_id, attributes):
        raise RuntimeError("broken on_client_end")


def broken_start_hook(span, connection, context, statement, parameters):
    raise ValueError("broken start hook")


def broken_error_hook(span, error):
    raise KeyError("broken error hook")


def _session_stage() -> EnrichmentStage:
    provider = trace.get_tracer_provider()
    stages = [
        p
        for p in provider._active_span_processor._span_processors  # the session pipeline
        if isinstance(p, EnrichmentStage)
    ]
    assert stages, "the session pipeline has no EnrichmentStage"
    return stages[0]


@pytest.fixture
def broken_pipeline(spans, monkeypatch):
    stage = _session_stage()
    broken = _BrokenEnricher()
    monkeypatch.setattr(stage, "_hooks", HookTable.of((broken, *stage.enrichers)))
    listener = SQLAlchemyStatementInstrumentor._listener
    assert listener is not None, "otel_db's SQLAlchemy instrumentation is not active"
    hooks = StatementHooks(
        on_start=(broken_start_hook, *listener._hooks.on_start),
        on_error=(broken_error_hook, *listener._hooks.on_error),
        rewriters=listener._hooks.rewriters,
    )
    monkeypatch.setattr(listener, "_hooks", hooks)
    return spans


def test_broken_enricher_and_hooks_never_reach_the_app(broken_pipeline, caplog):
    engine = sa.create_engine("sqlite://")
    with caplog.at_level(logging.WARNING, logger="otel_db"), engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        conn.execute(sa.text("INSERT INTO t (id, v) VALUES (1, 'a'), (2, 'b')"))
        rows = [conn.execute(sa.text("SELECT v FROM t WHERE id = 2")).scalar() for _ in range(5)]
        with pytest.raises(sa.exc.OperationalError):  # the app's own error, unchanged
            conn.execute(sa.text("SELECT * FROM no_such_table"))
    engine.dispose()

    assert rows == ["b"] * 5
    selects = [
        s
        for s in broken_pipeline.db_spans()
        if "FROM t" in (s.attributes.get(attr.DB_QUERY_TEXT) or "")
    ]
    assert len(selects) == 5
    # Exported, with the enrichments that did not fail (the fingerprint comes from an
    # enricher that runs after the broken one).
    assert all(attr.QUERY_FINGERPRINT in s.attributes for s in selects)
    failed = [s for s in broken_pipeline.db_spans() if "no_such_table" in str(s.attributes)]
    assert failed and failed[0].attributes.get(attr.ERROR_TYPE)

    messages = [r.getMessage() for r in caplog.records]
    messages = [m for m in messages if "failed and was skipped" in m]
    for where in (
        "containment-test broken enricher (span start)",
        "containment-test broken enricher (span end)",
        "broken_start_hook",
        "broken_error_hook",
    ):
        assert sum(where in m for m in messages) == 1, (where, messages)
