"""redis-py commands traced through otel_db's lean command span export exactly the
spans contrib's redis wrapper exports (name, kind, attributes, status, events, parent,
scope), and the pool facts and durations around them stay, on a real Redis."""

from __future__ import annotations

import uuid

import pytest
import redis
from opentelemetry import trace

from otel_db.instrumentation import redis as traced_redis
from otel_db.pools import redis_pool
from tests.conftest import REDIS_URL

pytestmark = [pytest.mark.redis, pytest.mark.shortcut]


def _workload(client: redis.Redis, key: str) -> None:
    tracer = trace.get_tracer("tests.redis.lean")
    client.set(key, "v")
    client.get(key)
    client.mget(key, key + ":other")
    with tracer.start_as_current_span("parent"):
        client.get(key)
    client.lpush(key + ":list", "a")
    with pytest.raises(redis.ResponseError):
        client.lpush(key, "wrong type")  # a string key: WRONGTYPE
    client.delete(key, key + ":list")


def _comparable(span, key: str) -> tuple:
    def plain(value):
        return value.replace(key, "KEY") if isinstance(value, str) else value

    events = [
        (
            event.name,
            {k: plain(v) for k, v in event.attributes.items() if k != "exception.stacktrace"},
        )
        for event in span.events
    ]
    return (
        span.name,
        span.kind,
        sorted((k, plain(v)) for k, v in span.attributes.items() if k != "otel_db.pool.wait_ms"),
        span.status.status_code,
        plain(span.status.description),
        events,
        span.parent is not None,
        span.instrumentation_scope.name,
        span.instrumentation_scope.version,
        span.instrumentation_scope.schema_url,
    )


def _spans(spans, client: redis.Redis) -> list[tuple]:
    key = f"otel_db_lean:{uuid.uuid4().hex[:8]}"
    client.ping()  # the pool's connection made before: same pool facts in both runs
    spans.clear()
    _workload(client, key)
    return [_comparable(span, key) for span in spans.db_spans()]


def test_lean_command_spans_are_contribs_spans(spans, monkeypatch):
    client = redis.Redis.from_url(REDIS_URL)
    try:
        lean = _spans(spans, client)
        state = redis_pool.pool_state(client.connection_pool)
        assert ("GET", 2) in state.command_spans  # the lean path made them
        monkeypatch.setattr(traced_redis, "command_template", lambda client, args: None)
        contrib = _spans(spans, client)
    finally:
        client.close()
    assert len(lean) == 7
    assert lean == contrib
