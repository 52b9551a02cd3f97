"""The exact OpenTelemetry versions otel_db's private-surface shortcuts were verified on.

otel_db reaches into private parts of the SDK, the exporters and contrib where the
public API costs too much per statement (see docs/performance.md). Each such place is a
*shortcut* named here, with the distributions whose private names it uses. A shortcut
runs only when every one of those distributions is installed at a version in
:data:`VERIFIED` (the exact releases the version matrix in ``noxfile.py`` runs the
suite against); otherwise it takes its public path, which is slower and correct.

The installed versions are read once, on the first question (never at import), and
one warning line names the distributions outside the verified set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Final

_logger = logging.getLogger("otel_db")

_CORE: Final = frozenset({"1.45.0", "1.45.1", "1.45.2"})
_CONTRIB: Final = frozenset({"0.66b0", "0.66b1"})

#: Distribution name -> the exact versions the version matrix ran the suite against.
VERIFIED: Final[dict[str, frozenset[str]]] = {
    "opentelemetry-api": _CORE,
    "opentelemetry-sdk": _CORE,
    "opentelemetry-proto": _CORE,
    "opentelemetry-exporter-otlp-proto-common": _CORE,
    "opentelemetry-exporter-otlp-proto-grpc": _CORE,
    "opentelemetry-exporter-otlp-proto-http": _CORE,
    "opentelemetry-instrumentation": _CONTRIB,
    "opentelemetry-instrumentation-dbapi": _CONTRIB,
    "opentelemetry-instrumentation-sqlite3": _CONTRIB,
    "opentelemetry-instrumentation-psycopg2": _CONTRIB,
    "opentelemetry-instrumentation-redis": _CONTRIB,
}

_SDK: Final = ("opentelemetry-api", "opentelemetry-sdk")
_GRPC: Final = (
    *_SDK,
    "opentelemetry-proto",
    "opentelemetry-exporter-otlp-proto-common",
    "opentelemetry-exporter-otlp-proto-grpc",
)

#: Shortcut -> the distributions whose private names it uses.
SHORTCUTS: Final[dict[str, tuple[str, ...]]] = {
    # metrics/shared_histogram.py, interned_histogram.py: records into the SDK's
    # aggregation objects.
    "sdk.metrics.aggregations": _SDK,
    # pipeline/stage.py, draft.py, transaction_holding.py, enrichers/n_plus_one.py:
    # read and write the fields of the SDK's Span / ReadableSpan.
    "sdk.trace.span_fields": _SDK,
    # pipeline/span_start.py: Tracer.start_span's steps with the SDK's _Span and the
    # tracer's _span_limits, _tracer_metrics, _instrumentation_scope, _is_enabled and
    # the samplers' delegates (SQLAlchemy statement and transaction spans start with
    # attributes otel_db checked once, without the per-span cleaning pass).
    "sdk.trace.start_span": _SDK,
    # export/otlp_encoding.py: replaces the gRPC span exporter's _translate_data.
    "exporter.grpc.translate_data": _GRPC,
    # export/collector_probe.py: a new gRPC channel after an outage
    # (_initialize_channel_and_stub, _channel).
    "exporter.grpc.reconnect": _GRPC,
    # export/exit.py: the providers' _atexit_handler / _shutdown.
    "sdk.provider.atexit": _SDK,
    # configurator.py: _OTelSDKConfigurator._configure(export_span_processor=...).
    "sdk.configurator": _SDK,
    # instrumentation/semconv.py: contrib's _semconv helpers.
    "contrib.semconv": ("opentelemetry-instrumentation",),
    # launcher.py: contrib's auto_instrumentation.execl.
    "contrib.launcher.execl": ("opentelemetry-instrumentation",),
    # instrumentation/sqlite3.py, psycopg2.py: contrib's cursor proxy and integration
    # private names (_duration_histogram, ...); instrumentation/lean_statement.py: the
    # integration's _tracer and CursorTracer's _populate_span, _get_metric_attributes,
    # _record_metrics.
    "contrib.dbapi": (
        "opentelemetry-instrumentation",
        "opentelemetry-instrumentation-dbapi",
        "opentelemetry-instrumentation-sqlite3",
        "opentelemetry-instrumentation-psycopg2",
    ),
    # instrumentation/redis.py, redis_command_span.py: contrib's _traced_execute_factory
    # and RedisInstrumentor._get_tracer (Redis.execute_command's span made once per
    # pool, command and argument count).
    "contrib.redis": ("opentelemetry-instrumentation", "opentelemetry-instrumentation-redis"),
}

_lock = threading.Lock()
_installed: dict[str, str | None] | None = None
_verdicts: dict[str, bool] = {}
_warned = False
#: Tests (and the version matrix) force every gate open or shut with :func:`forced`.
_forced: bool | None = None


def _read_installed() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in VERIFIED:
        try:
            found[name] = metadata.version(name)
        except Exception:  # not installed (an optional exporter) or unreadable
            found[name] = None
    return found


def installed() -> dict[str, str | None]:
    """Distribution -> installed version (None when not installed), read once."""
    global _installed
    if _installed is None:
        with _lock:
            if _installed is None:
                _installed = _read_installed()
    return _installed


def unverified() -> dict[str, str]:
    """The installed distributions whose version is outside :data:`VERIFIED`."""
    return {
        name: version
        for name, version in installed().items()
        if version is not None and version not in VERIFIED[name]
    }


def shortcut(name: str) -> bool:
    """Whether shortcut ``name`` may use private names (else: its public path).

    Called once per shortcut at set-up, not per statement. The first call logs the
    unverified versions, if any.
    """
    if _forced is not None:
        return _forced
    verdict = _verdicts.get(name)
    if verdict is None:
        outside = unverified()
        if outside:
            warn_once()
        verdict = _verdicts[name] = not any(dist in outside for dist in SHORTCUTS[name])
    return verdict


def warn_once() -> None:
    """One warning line naming the installed versions outside the verified set."""
    global _warned
    if _warned:
        return
    outside = unverified()
    with _lock:
        if _warned:
            return
        _warned = True
    if outside:
        _logger.warning(
            "otel_db: OpenTelemetry versions not verified with this otel_db release: %s; "
            "the shortcuts that depend on them take the public (slower) path",
            ", ".join(f"{name} {version}" for name, version in sorted(outside.items())),
        )


@contextmanager
def forced(value: bool | None) -> Iterator[None]:
    """Every gate open (True), shut (False) or read from the versions (None) inside."""
    global _forced
    before = _forced
    _forced = value
    try:
        yield
    finally:
        _forced = before


def reset() -> None:
    """Forget the installed versions and the warning (tests that change them)."""
    global _installed, _warned
    with _lock:
        _installed = None
        _verdicts.clear()
        _warned = False


__all__ = ["SHORTCUTS", "VERIFIED", "forced", "installed", "shortcut", "unverified", "warn_once"]
