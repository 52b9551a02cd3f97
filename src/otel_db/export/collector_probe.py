"""Is the collector back? A TCP connect to the OTLP endpoint, instead of a blocked export.

During an outage every export the OTLP exporters attempt blocks for seconds: the SDK's
gRPC and HTTP exporters retry inside ``export()`` with their own backoff (1, 2, 4 s,
within ``OTEL_EXPORTER_OTLP_TIMEOUT``). A collector that comes back during one of those
sleeps waits for the sleep to end, and then for the processor's own backoff: export
resumed ~4.5 s after the collector's return. A loopback or LAN TCP connect answers in
well under a millisecond (refused) or at once (accepted), so after a failed export the
processor asks the endpoint every :data:`PROBE_INTERVAL_S` whether it accepts
connections, and exports as soon as it does.

The endpoint comes from the standard variables the SDK's exporters read
(``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, their
defaults), for the SDK's own OTLP span exporter classes only; for any other exporter,
or an endpoint without a port, there is no probe and the processor's backoff applies.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from otel_db.compat.verified import shortcut

PROBE_INTERVAL_S: Final = 0.1
PROBE_TIMEOUT_S: Final = 0.2

_DEFAULT_ENDPOINTS: Final = {
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter": "http://localhost:4317",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter": "http://localhost:4318",
}

Address = tuple[str, int]


def collector_address(exporter: Any, environ: Mapping[str, str] | None = None) -> Address | None:
    """(host, port) the OTLP span ``exporter`` sends to, or None when not known."""
    default = _DEFAULT_ENDPOINTS.get(type(exporter).__module__)
    if default is None:
        return None
    environ = os.environ if environ is None else environ
    endpoint = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or default
    )
    try:
        parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or port is None:
        return None
    return host, port


def accepts_connections(address: Address, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether something listens at ``address`` (a TCP connect, closed at once)."""
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


#: Release lines of the SDK's gRPC exporter whose private ``_channel`` and
#: ``_initialize_channel_and_stub`` are what :func:`reconnect` expects (read in their
#: source; tests/unit/test_collector_probe.py checks the installed one).
def reconnect(exporter: Any) -> bool:
    """Give the SDK's gRPC span exporter a new channel before the first export after an
    outage; whether it did.

    The exporter's channel went through the outage's failed connects and sits in gRPC's
    reconnect backoff: the first export on it fails at once, and the exporter's own retry
    sleeps ~1 s before trying again (on a channel it re-creates). A new channel connects
    on that first export. Only on verified exporter lines (private names); elsewhere the
    exporter's own retry resumes export, about 1 s later.
    """
    if (
        type(exporter).__module__ != "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
        or not shortcut("exporter.grpc.reconnect")
    ):
        return False
    initialize = getattr(exporter, "_initialize_channel_and_stub", None)
    if not callable(initialize):
        return False
    try:
        channel = getattr(exporter, "_channel", None)
        if channel is not None:
            channel.close()
        initialize()
        return True
    except Exception:
        return False
