"""The collector probe: where the OTLP exporters send, whether it listens, a new channel."""

from __future__ import annotations

import socket

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from otel_db.export.collector_probe import (
    accepts_connections,
    collector_address,
    reconnect,
)


def test_address_from_the_standard_variables():
    grpc_exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:1")
    http_exporter = HttpSpanExporter()
    assert collector_address(grpc_exporter, {}) == ("localhost", 4317)
    assert collector_address(http_exporter, {}) == ("localhost", 4318)
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:14317"}
    assert collector_address(grpc_exporter, environ) == ("collector", 14317)
    environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "https://traces.example:443/v1/traces"
    assert collector_address(http_exporter, environ) == ("traces.example", 443)
    assert collector_address(grpc_exporter, {"OTEL_EXPORTER_OTLP_ENDPOINT": "10.0.0.1:4317"}) == (
        "10.0.0.1",
        4317,
    )
    assert collector_address(grpc_exporter, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}) is None
    assert collector_address(ConsoleSpanExporter(), {}) is None
    grpc_exporter.shutdown()


def test_accepts_connections_on_a_real_socket():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        address = listener.getsockname()
        assert accepts_connections(address)
    assert not accepts_connections(address)  # closed: refused


def test_reconnect_gives_the_installed_grpc_exporter_a_new_channel():
    # The private names reconnect() uses are gated (compat.verified, shortcut
    # "exporter.grpc.reconnect") and listed in test_private_surface.py.
    exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:1", insecure=True)
    before = exporter._channel
    assert reconnect(exporter) is True
    assert exporter._channel is not before
    exporter.shutdown()
    assert reconnect(ConsoleSpanExporter()) is False


def test_reconnect_takes_the_exporters_own_retry_outside_the_verified_versions():
    from otel_db.compat import verified

    exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:1", insecure=True)
    before = exporter._channel
    with verified.forced(False):
        assert reconnect(exporter) is False
    assert exporter._channel is before
    exporter.shutdown()
