"""Every private name otel_db relies on, with the shape it relies on, on the installed versions.

A new OpenTelemetry SDK, exporter, contrib or driver release that renames, removes or
reshapes one of these fails here, by name, instead of breaking users. Each shortcut
that uses them is gated on exact versions (:mod:`otel_db.compat.verified`) with a public
path; the driver privates (pool counters) and the context keys are read defensively.
When a name here changes: fix the shortcut or its gate, then the version sets.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind

from otel_db.compat import verified


def _has(obj: Any, *names: str) -> None:
    missing = [name for name in names if not hasattr(obj, name)]
    assert not missing, f"{getattr(obj, '__name__', type(obj).__name__)} lacks {missing}"


def _params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# -- the verified set itself ---------------------------------------------------------


def test_every_shortcut_names_only_distributions_with_verified_versions():
    for name, distributions in verified.SHORTCUTS.items():
        assert distributions, name
        assert set(distributions) <= set(verified.VERIFIED), name


def test_the_installed_opentelemetry_versions_are_verified_ones():
    """Fails on a release nobody ran the suite on: add it to VERIFIED only after the
    version matrix (noxfile.py) passed with it and this module still does."""
    found = verified.unverified()
    assert not found, "installed, not in compat/verified.py: " + ", ".join(
        f"{name} {version}" for name, version in sorted(found.items())
    )


# -- SDK metrics: shared_histogram.py, interned_histogram.py -----------------------------


def test_sdk_metrics_internals_the_histogram_shortcut_uses():
    from opentelemetry.attributes import _clean_attribute_value
    from opentelemetry.sdk.metrics import Histogram
    from opentelemetry.sdk.metrics._internal._view_instrument_match import (
        _hash_attributes,
        _ViewInstrumentMatch,
    )
    from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOffExemplarFilter
    from opentelemetry.sdk.metrics._internal.instrument import Histogram as SdkHistogram
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
    from opentelemetry.sdk.metrics._internal.measurement_consumer import (
        SynchronousMeasurementConsumer,
    )
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage

    assert _params(_clean_attribute_value) == ["value", "max_string_value_length"]
    assert _hash_attributes({"b": 1, "a": 2}) == _hash_attributes({"a": 2, "b": 1})
    assert _params(_ViewInstrumentMatch.consume_measurement) == [
        "self",
        "measurement",
        "should_sample_exemplar",
    ]
    assert _params(MetricReaderStorage._get_or_init_view_instrument_match) == [
        "self",
        "instrument",
    ]
    # The fields an aggregation reads from a Measurement (the shortcut's _Point has them).
    assert {"value", "time_unix_nano", "instrument", "context", "attributes"} <= set(
        inspect.signature(Measurement).parameters
    )

    delta = InMemoryMetricReader(preferred_temporality={Histogram: AggregationTemporality.DELTA})
    readers = [InMemoryMetricReader(), delta]
    provider = MeterProvider(
        metric_readers=readers, exemplar_filter=AlwaysOffExemplarFilter(), shutdown_on_exit=False
    )
    histogram = provider.get_meter("surface").create_histogram("h")
    histogram.record(0.5, {"a": "b"})
    assert isinstance(histogram, SdkHistogram)
    _has(histogram, "_meter_config", "_measurement_consumer", "record")
    assert histogram._meter_config is None or isinstance(histogram._meter_config.is_enabled, bool)
    consumer = histogram._measurement_consumer
    assert type(consumer) is SynchronousMeasurementConsumer
    assert type(consumer._sdk_config.exemplar_filter) is AlwaysOffExemplarFilter
    assert isinstance(consumer._reader_storages, dict) and len(consumer._reader_storages) == 2
    for storage in consumer._reader_storages.values():
        (match,) = storage._get_or_init_view_instrument_match(histogram)
        assert isinstance(match, _ViewInstrumentMatch)
        _has(match, "_view", "_attributes_aggregation", "_lock")
        assert match._view._attribute_keys is None
        assert type(match._attributes_aggregation) is dict
        assert isinstance(match._lock, type(threading.Lock()))
        (aggregation,) = match._attributes_aggregation.values()
        assert _params(aggregation.aggregate) == ["measurement", "should_sample_exemplar"]
        # 1.45.2 replaces the delta table on collection (the shortcut follows it by
        # identity and aggregates under _lock); earlier releases have no such flag.
        reset = getattr(match, "_reset_on_collect", False)
        assert isinstance(reset, bool)
    provider.shutdown()


# -- SDK trace: pipeline/stage.py, draft.py, transaction_holding.py, n_plus_one.py ---------


def test_sdk_span_fields_the_pipeline_reads_and_writes():
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.trace import SpanProcessor

    ended: list[ReadableSpan] = []
    ending: list[Any] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

        def _on_ending(self, span: Any) -> None:  # the SDK calls it on every processor
            ending.append(span)

    provider = TracerProvider()
    provider.add_span_processor(Keep())
    tracer = provider.get_tracer("surface")
    with tracer.start_as_current_span("parent"):
        live = tracer.start_span("child", kind=SpanKind.CLIENT, attributes={"k": "v"})
        _has(live, "_kind", "_parent", "_attributes")
        assert live._kind is SpanKind.CLIENT and live._parent is not None
        assert type(live._attributes) is BoundedAttributes
        assert type(live._attributes._dict) is dict
        live.add_event("e")
        live.end()
    assert ending and ending[0] is live
    span = ended[0]
    assert type(span) is ReadableSpan
    _has(span, "_context", "_kind", "_status", "_events", "_links", "_attributes", "_name")
    _has(span, "_start_time", "_end_time", "_parent")
    assert span._name == "child" and span._kind is SpanKind.CLIENT
    assert span._status.status_code is not None
    assert len(getattr(span._events, "_dq", span._events)) == 1
    assert span._attributes._dict == {"k": "v"}
    # draft.build() and with_outcome() copy __dict__: every constructor field lives there.
    fields = set(vars(span))
    for name in ("name", "context", "parent", "resource", "attributes", "events", "links"):
        assert f"_{name}" in fields, name
    for name in ("kind", "status", "start_time", "end_time", "instrumentation_scope"):
        assert f"_{name}" in fields, name
    assert {"name", "context", "parent", "attributes", "events", "links", "kind", "status"} <= set(
        _params(ReadableSpan.__init__)
    )
    provider.shutdown()


# -- SDK trace: pipeline/span_start.py ------------------------------------------------

#: sha256 of ``Tracer.start_span``'s source on 1.45.0, 1.45.1 and 1.45.2 (identical):
#: SpanStarter._start repeats its steps, so any change to it must be looked at.
START_SPAN_SOURCE = "3cd55e4a9e148e4117820b4da05af6cfc6dcff6f8d8e9809ccce5c85a5aea2d0"


def test_sdk_tracer_internals_the_span_starter_uses():
    import hashlib

    from opentelemetry import trace
    from opentelemetry.attributes import BoundedAttributes
    from opentelemetry.sdk.trace import SpanLimits, Tracer, _Span, sampling

    source = inspect.getsource(Tracer.start_span)
    assert hashlib.sha256(source.encode()).hexdigest() == START_SPAN_SOURCE
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=7))
    tracer = provider.get_tracer("surface")
    assert type(tracer) is Tracer
    _has(tracer, "sampler", "id_generator", "resource", "span_processor", "instrumentation_info")
    _has(tracer, "_span_limits", "_tracer_metrics", "_instrumentation_scope", "_is_enabled")
    assert tracer._span_limits.max_span_attributes == 7
    assert tracer._span_limits.max_span_attribute_length is None
    assert tracer._is_enabled() is True
    assert _params(tracer._tracer_metrics.start_span) == [
        "parent_span_context",
        "sampling_decision",
    ]
    _has(tracer.id_generator, "generate_trace_id", "generate_span_id", "is_trace_id_random")
    for name in (
        "name",
        "context",
        "parent",
        "sampler",
        "resource",
        "attributes",
        "span_processor",
        "kind",
        "links",
        "instrumentation_info",
        "record_exception",
        "set_status_on_exception",
        "limits",
        "instrumentation_scope",
        "record_end_metrics",
    ):
        assert name in _params(_Span.__init__), name
    span = tracer.start_span("s")
    assert type(span) is _Span
    assert type(span._attributes) is BoundedAttributes and type(span._attributes._dict) is dict
    span.end()
    # The samplers taken to return the attributes they are given, and ParentBased's
    # delegates.
    for name in ("StaticSampler", "_AlwaysOn", "_AlwaysOff", "TraceIdRatioBased"):
        _has(sampling, name)
    parent_based = sampling.ParentBased(sampling.ALWAYS_ON)
    _has(
        parent_based,
        "_root",
        "_remote_parent_sampled",
        "_remote_parent_not_sampled",
        "_local_parent_sampled",
        "_local_parent_not_sampled",
    )
    for name in ("ParentBasedTraceIdRatio", "_ParentBasedAlwaysOn", "_ParentBasedAlwaysOff"):
        assert issubclass(getattr(sampling, name), sampling.ParentBased)
    proxy = trace.ProxyTracer("surface")
    assert proxy._real_tracer is None
    provider.shutdown()


# -- SDK providers: export/exit.py; configurator.py ---------------------------------


def test_provider_privates_the_bounded_exit_uses():
    tracer_provider = TracerProvider()
    meter_provider = MeterProvider()
    try:
        assert callable(tracer_provider._atexit_handler)
        assert callable(meter_provider._atexit_handler)
        assert meter_provider._shutdown is False
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
    assert meter_provider._shutdown is True


def test_sdk_configurator_hook():
    from opentelemetry.sdk._configuration import _initialize_components, _OTelSDKConfigurator

    assert callable(_OTelSDKConfigurator._configure)
    params = _params(_initialize_components)
    assert "export_span_processor" in params and "resource_attributes" in params


# -- exporters: export/otlp_encoding.py, export/resilient.py --------------------------


def test_grpc_span_exporter_translate_data():
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:4317", insecure=True)
    try:
        assert _params(exporter._translate_data) == ["data"]
        assert isinstance(exporter._translate_data([]), ExportTraceServiceRequest)
        assert exporter._endpoint
        assert callable(exporter._initialize_channel_and_stub)
    finally:
        exporter.shutdown()


def test_context_keys():
    from opentelemetry import context
    from opentelemetry.instrumentation import utils
    from opentelemetry.trace import propagation

    assert isinstance(context._SUPPRESS_INSTRUMENTATION_KEY, str)
    assert isinstance(utils._SUPPRESS_INSTRUMENTATION_KEY, str)
    assert isinstance(utils._SUPPRESS_INSTRUMENTATION_KEY_PLAIN, str)
    assert isinstance(propagation._SPAN_KEY, str)


# -- contrib: instrumentation/semconv.py, launcher.py, setup.py, sqlite3.py, psycopg2.py ---


def test_contrib_semconv_helpers():
    from opentelemetry.instrumentation import _semconv

    for name in (
        "_report_new",
        "_set_db_name",
        "_set_db_operation",
        "_set_db_statement",
        "_set_db_system",
        "_set_http_net_peer_name_client",
        "_set_http_peer_port_client",
        "_get_schema_url_for_signal_types",
    ):
        assert callable(getattr(_semconv, name)), name
        if name.startswith("_set_"):
            assert _params(getattr(_semconv, name)) == [
                "result",
                _params(getattr(_semconv, name))[1],
                "sem_conv_opt_in_mode",
            ]
    stability = _semconv._OpenTelemetrySemanticConventionStability
    _has(stability, "_initialize", "_get_opentelemetry_stability_opt_in_mode")
    assert _semconv._OpenTelemetryStabilitySignalType.DATABASE
    assert {"default", "database", "database/dup"} <= {m.value for m in _semconv._StabilityMode}


def test_contrib_launcher_and_loader():
    from opentelemetry.instrumentation import auto_instrumentation
    from opentelemetry.instrumentation.auto_instrumentation import _load

    assert callable(auto_instrumentation.execl) and callable(auto_instrumentation.run)
    assert callable(_load._load_instrumentors)


def test_contrib_dbapi_names_the_driver_integrations_use(monkeypatch):
    from opentelemetry.instrumentation import _semconv, dbapi

    from otel_db.metrics.interned_histogram import CONTRIB_HISTOGRAM_ATTRIBUTES

    for name in (
        "CursorTracer",
        "DatabaseApiIntegration",
        "ObjectProxy",
        "TracedConnectionProxy",
        "TracedCursorProxy",
    ):
        assert isinstance(getattr(dbapi, name), type), name
    assert "db_api_integration_factory" in _params(dbapi.wrap_connect)
    # Under the database opt-in (the distro's) contrib creates its two histograms.
    stability = _semconv._OpenTelemetrySemanticConventionStability
    signal = _semconv._OpenTelemetryStabilitySignalType
    mode = _semconv._StabilityMode
    monkeypatch.setattr(stability, "_initialized", True)
    monkeypatch.setattr(
        stability,
        "_OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING",
        {signal.HTTP: mode.DEFAULT, signal.DATABASE: mode.DATABASE, signal.GEN_AI: mode.DEFAULT},
    )
    integration = dbapi.DatabaseApiIntegration("surface", "sqlite")
    for name in CONTRIB_HISTOGRAM_ATTRIBUTES:
        assert callable(getattr(integration, name).record), name
    psycopg2_contrib = importlib.import_module("opentelemetry.instrumentation.psycopg2")
    assert {"db_api", "base_factory"} <= set(_params(psycopg2_contrib._new_cursor_factory))
    assert callable(psycopg2_contrib.Psycopg2Instrumentor._uninstrument)
    importlib.import_module("opentelemetry.instrumentation.sqlite3").SQLite3Instrumentor  # noqa: B018


def test_contrib_dbapi_names_the_lean_statement_tracer_uses(otel_session):
    """(``otel_session``: the semconv opt-in is set before contrib's DB-API integration
    first reads it, as the launcher does; read here first, it would stay on the old
    conventions for the rest of the session.)

    instrumentation/lean_statement.py (``contrib.dbapi`` shortcut): the integration's
    tracer and histograms, and the ``CursorTracer`` methods that populate a span, build
    the metric attributes and record the metrics, with the arguments it passes."""
    from opentelemetry.instrumentation import dbapi

    integration = dbapi.DatabaseApiIntegration("surface", "postgresql")
    _has(integration, "_tracer", "_duration_histogram", "_returned_rows_histogram")
    _has(integration, "enable_commenter", "capture_parameters", "database", "name")
    tracer = dbapi.CursorTracer(integration)
    _has(tracer, "_db_api_integration")
    assert tracer._db_api_integration is integration
    assert _params(dbapi.CursorTracer._populate_span) == ["self", "span", "cursor", "args"]
    assert _params(dbapi.CursorTracer._get_metric_attributes) == [
        "self",
        "operation_name",
        "error",
    ]
    assert _params(dbapi.CursorTracer._record_metrics) == [
        "self",
        "cursor",
        "operation_name",
        "start_time",
        "error",
    ]
    assert _params(dbapi.CursorTracer.get_operation_name) == ["self", "cursor", "args"]


def test_contrib_redis_names_the_lean_command_span_uses(otel_session):
    """(``otel_session``: as in the DB-API test above.)

    instrumentation/redis.py, redis_command_span.py (``contrib.redis`` shortcut):
    contrib's wrapper factory, called with a stand-in tracer, and the instrumentor's
    tracer."""
    import redis
    from opentelemetry.instrumentation import redis as contrib_redis

    assert _params(contrib_redis._traced_execute_factory) == [
        "tracer",
        "request_hook",
        "response_hook",
    ]
    wrapper = contrib_redis._traced_execute_factory(trace_api_tracer(), None, None)
    assert _params(wrapper) == ["func", "instance", "args", "kwargs"]
    assert callable(contrib_redis.RedisInstrumentor._get_tracer)
    assert callable(redis.Redis.execute_command)


def trace_api_tracer() -> Any:
    from opentelemetry import trace

    return trace.NoOpTracer()


# -- drivers: pools/*.py (read defensively; listed so a release that moves them shows) ---


def test_driver_pool_privates():
    import psycopg2.pool
    import redis
    import sqlalchemy as sa

    pg = psycopg2.pool.SimpleConnectionPool.__new__(psycopg2.pool.SimpleConnectionPool)
    assert "_used" in inspect.getsource(psycopg2.pool.AbstractConnectionPool.__init__)
    assert "_pool" in inspect.getsource(psycopg2.pool.AbstractConnectionPool.__init__)
    del pg
    plain = redis.ConnectionPool()
    _has(plain, "_in_use_connections", "_available_connections")
    blocking = redis.BlockingConnectionPool()
    _has(blocking, "_connections", "pool")
    engine = sa.create_engine("sqlite:///:memory:", poolclass=sa.pool.QueuePool)
    _has(engine.pool, "_max_overflow")
    engine.dispose()


def test_psycopg2_private_connect():
    """instrumentation/psycopg2.py wraps ``psycopg2._connect`` on the releases in
    ``PRIVATE_CONNECT_VERSIONS`` (so ``psycopg2.connect`` stays psycopg2's own)."""
    import psycopg2

    from otel_db.instrumentation.psycopg2 import PRIVATE_CONNECT_VERSIONS, _connect_target

    version = tuple(int(part) for part in psycopg2.__version__.split()[0].split(".")[:2])
    assert version in PRIVATE_CONNECT_VERSIONS, psycopg2.__version__
    assert callable(psycopg2._connect)
    assert "_connect" in psycopg2.connect.__code__.co_names
    assert _connect_target(psycopg2) == "_connect"


def test_sqlalchemy_error_path():
    """instrumentation/sqlalchemy.py wraps ``Connection._handle_dbapi_exception`` (every
    failed statement passes there, even under ``skip_user_error_events``) on the series in
    ``ERROR_PATH_SERIES`` with this signature; elsewhere ``handle_error`` ends the span."""
    import sqlalchemy
    from sqlalchemy.engine import Connection

    from otel_db.instrumentation.sqlalchemy import ERROR_PATH_SERIES, _error_path_checked

    assert sqlalchemy.__version__.startswith(ERROR_PATH_SERIES), sqlalchemy.__version__
    method = Connection.__dict__["_handle_dbapi_exception"]
    assert _params(getattr(method, "__wrapped__", method))[:6] == [
        "self", "e", "statement", "parameters", "cursor", "context",
    ]
    assert _error_path_checked()
