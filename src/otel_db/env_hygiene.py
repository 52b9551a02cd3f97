"""Repairs the standard ``OTEL_*`` values the SDK would choke on, before it reads them.

The SDK reads its environment lazily and is strict in places: one unknown exporter name,
an upper-case protocol, ``OTEL_EXPORTER_OTLP_TIMEOUT=abc`` with gRPC, ``zstd``
compression or a queue smaller than the batch raises inside the configurator, and the
launcher then swallows the error: the app runs with no telemetry at all. The distro runs
before any of that is read, so it fixes each bad value in ``os.environ`` once, with ONE
warning naming the variable, the value and the value used. Credentials in an endpoint
URL are moved into an ``authorization`` header and never echoed.
"""

from __future__ import annotations

import base64
import difflib
import logging
import math
import re
from collections.abc import Callable, Iterable, MutableMapping
from importlib.metadata import entry_points
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from otel_db.instrumentation.selection import OWN_SQLALCHEMY_ENTRY_POINT

_logger = logging.getLogger(__name__)

_SIGNALS = ("TRACES", "METRICS", "LOGS")
_EXPORTER_GROUPS = {
    "OTEL_TRACES_EXPORTER": "opentelemetry_traces_exporter",
    "OTEL_METRICS_EXPORTER": "opentelemetry_metrics_exporter",
    "OTEL_LOGS_EXPORTER": "opentelemetry_logs_exporter",
}
_FALLBACK_EXPORTER = "otlp"
_OTLP_IMPLEMENTATIONS = frozenset({"otlp_proto_grpc", "otlp_proto_http"})
_PROTOCOLS = ("grpc", "http/protobuf")
_DEFAULT_PROTOCOL = "grpc"
_COMPRESSION_BY_PROTOCOL = {"grpc": ("gzip",), "http/protobuf": ("gzip", "deflate")}
_DEFAULT_OTLP_TIMEOUT_S = 10
_RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")
_DEFAULT_SAMPLER = "parentbased_always_on"
# (variable, SDK default); the processors need every one to be a positive integer.
_BATCH_SETTINGS = {
    "BSP": (("SCHEDULE_DELAY", 5000), ("EXPORT_TIMEOUT", 30000)),
    "BLRP": (("SCHEDULE_DELAY", 1000), ("EXPORT_TIMEOUT", 30000)),
}
_QUEUE_DEFAULT = 2048
_BATCH_DEFAULT = 512

# user:password@ (or user@) right after a scheme, at the start, or after a separator.
_USERINFO = re.compile(r"(?P<lead>[a-zA-Z][a-zA-Z0-9+.\-]*://|^|(?<=[\s'\"=(,]))[^\s/@'\"]+@")


def mask_credentials(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL replaced by ``***@``."""
    return _USERINFO.sub(lambda m: f"{m.group('lead')}***@", text)


def repair_environment(environ: MutableMapping[str, str]) -> list[str]:
    """Fix every bad standard value in ``environ``; return the warnings (each also logged)."""
    warnings: list[str] = []

    def warn(name: str, value: str, why: str, used: str) -> None:
        message = mask_credentials(f"otel_db: {name}={value!r} {why}; using {used}")
        _logger.warning(message)
        warnings.append(message)

    for check in (
        _exporters,
        _protocols,
        _timeouts,
        _compression,
        _batch_sizes,
        _propagators,
        _sampler,
        _endpoints,
        _disabled_instrumentations,
    ):
        try:
            check(environ, warn)
        except Exception as error:  # a bug here must not stop the app either
            _logger.debug("otel_db: settings check %s failed: %r", check.__name__, error)
    return warnings


_Warn = Callable[[str, str, str, str], None]


def _value(environ: MutableMapping[str, str], name: str) -> str | None:
    raw = environ.get(name)
    return raw if raw is not None and raw.strip() else None


def _entry_point_names(group: str) -> set[str]:
    return {entry_point.name for entry_point in entry_points(group=group)}


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _exporters(environ: MutableMapping[str, str], warn: _Warn) -> None:
    for name, group in _EXPORTER_GROUPS.items():
        raw = _value(environ, name)
        if raw is None:
            continue
        wanted = _split(raw)
        if [w.lower() for w in wanted] == ["none"]:
            if raw != "none":
                environ[name] = "none"
            continue
        known = _entry_point_names(group)
        if known & _OTLP_IMPLEMENTATIONS:
            known.add("otlp")  # the SDK resolves it to one of these by the OTLP protocol
        kept: list[str] = []
        unknown: list[str] = []
        for exporter in wanted:
            lowered = exporter.lower()
            if lowered in known:
                if lowered not in kept:
                    kept.append(lowered)
            elif lowered != "none":
                unknown.append(exporter)
        fixed = ",".join(kept) or _FALLBACK_EXPORTER
        if fixed == raw.strip():
            continue
        environ[name] = fixed
        if unknown:
            hints = []
            for typo in unknown:
                close = difflib.get_close_matches(typo.lower(), sorted(known), n=1, cutoff=0.6)
                hints.append(f"{typo!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            why = f"names no installed exporter: {', '.join(hints)}"
        else:
            why = "is not in the expected form (lower-case names)"
        used = repr(fixed)
        if "otlp" in fixed.split(","):
            used += f", which sends to {_otlp_destination(environ, name)}"
        warn(name, raw, why, used)


def _otlp_destination(environ: MutableMapping[str, str], exporter_variable: str) -> str:
    """Where the OTLP exporter of this signal sends: the endpoint variable in force, or the
    SDK's default for the protocol (nothing may listen there)."""
    signal = exporter_variable.split("_")[1]  # OTEL_TRACES_EXPORTER -> TRACES
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        endpoint = _value(environ, variable)
        if endpoint is not None:
            return f"{endpoint.strip()} ({variable})"
    protocol = (
        _value(environ, f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or _value(environ, "OTEL_EXPORTER_OTLP_PROTOCOL")
        or _DEFAULT_PROTOCOL
    ).strip()
    if protocol == "grpc":
        return "a collector at http://localhost:4317 (the OTLP default)"
    return f"a collector at http://localhost:4318/v1/{signal.lower()} (the OTLP default)"


def _protocol_names() -> Iterable[str]:
    yield "OTEL_EXPORTER_OTLP_PROTOCOL"
    for signal in _SIGNALS:
        yield f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"


def _protocols(environ: MutableMapping[str, str], warn: _Warn) -> None:
    for name in _protocol_names():
        raw = _value(environ, name)
        if raw is None:
            continue
        lowered = raw.strip().lower()
        if lowered == "http":
            lowered = "http/protobuf"
        if lowered in _PROTOCOLS:
            if lowered != raw:
                environ[name] = lowered
                warn(name, raw, "is not in the expected form (lower-case)", repr(lowered))
            continue
        fallback = "http/protobuf" if lowered.startswith("http") else _DEFAULT_PROTOCOL
        environ[name] = fallback
        warn(name, raw, f"is not supported (one of {', '.join(_PROTOCOLS)})", repr(fallback))


def _protocol_for(environ: MutableMapping[str, str], signal: str | None) -> str:
    specific = environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL") if signal else None
    return (specific or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or _DEFAULT_PROTOCOL).strip()


def _per_signal(base: str) -> Iterable[tuple[str, str | None]]:
    yield f"OTEL_EXPORTER_OTLP_{base}", None
    for signal in _SIGNALS:
        yield f"OTEL_EXPORTER_OTLP_{signal}_{base}", signal


def _timeouts(environ: MutableMapping[str, str], warn: _Warn) -> None:
    for name, _signal in _per_signal("TIMEOUT"):
        raw = _value(environ, name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value > 0:
            continue
        del environ[name]
        warn(name, raw, "is not a positive number", f"the default {_DEFAULT_OTLP_TIMEOUT_S}")


def _compression(environ: MutableMapping[str, str], warn: _Warn) -> None:
    for name, signal in _per_signal("COMPRESSION"):
        raw = _value(environ, name)
        if raw is None:
            continue
        lowered = raw.strip().lower()
        if lowered == "none":  # the gRPC exporter rejects the spec's own "none"
            del environ[name]
            continue
        protocol = _protocol_for(environ, signal)
        supported = _COMPRESSION_BY_PROTOCOL.get(protocol, ("gzip",))
        if lowered in supported:
            if lowered != raw:
                environ[name] = lowered
            continue
        del environ[name]
        warn(name, raw, f"is not supported with {protocol} ({', '.join(supported)})", "none")


def _positive_int(raw: str) -> int | None:
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value > 0 else None


def _batch_sizes(environ: MutableMapping[str, str], warn: _Warn) -> None:
    for prefix, others in _BATCH_SETTINGS.items():
        for suffix, default in others:
            name = f"OTEL_{prefix}_{suffix}"
            raw = _value(environ, name)
            if raw is not None and _positive_int(raw) is None:
                del environ[name]
                warn(name, raw, "is not a positive integer", f"the default {default}")
        queue_name = f"OTEL_{prefix}_MAX_QUEUE_SIZE"
        batch_name = f"OTEL_{prefix}_MAX_EXPORT_BATCH_SIZE"
        queue = _value(environ, queue_name)
        batch = _value(environ, batch_name)
        if queue is not None and _positive_int(queue) is None:
            del environ[queue_name]
            warn(queue_name, queue, "is not a positive integer", f"the default {_QUEUE_DEFAULT}")
            queue = None
        if batch is not None and _positive_int(batch) is None:
            del environ[batch_name]
            warn(batch_name, batch, "is not a positive integer", f"the default {_BATCH_DEFAULT}")
            batch = None
        queue_size = _positive_int(queue) if queue else _QUEUE_DEFAULT
        batch_size = _positive_int(batch) if batch else _BATCH_DEFAULT
        if queue_size is not None and batch_size is not None and batch_size > queue_size:
            environ[batch_name] = str(queue_size)
            if batch is not None:
                warn(
                    batch_name, batch, f"is larger than {queue_name}={queue_size}", str(queue_size)
                )
            else:
                warn(
                    queue_name,
                    queue or "",
                    f"is smaller than the default export batch size {_BATCH_DEFAULT}",
                    f"batches of {queue_size}",
                )


def _propagators(environ: MutableMapping[str, str], warn: _Warn) -> None:
    name = "OTEL_PROPAGATORS"
    raw = _value(environ, name)
    if raw is None:
        return
    wanted = _split(raw)
    if any(p.lower() == "none" for p in wanted):
        return
    known = _entry_point_names("opentelemetry_propagator")
    kept = [p for p in wanted if p in known]
    unknown = [p for p in wanted if p not in known]
    if not unknown:
        return
    fixed = ",".join(kept) or "tracecontext,baggage"
    environ[name] = fixed
    warn(name, raw, f"names no installed propagator ({', '.join(map(repr, unknown))})", repr(fixed))


def _sampler(environ: MutableMapping[str, str], warn: _Warn) -> None:
    name = "OTEL_TRACES_SAMPLER"
    raw = _value(environ, name)
    if raw is not None:
        lowered = raw.strip().lower()
        if lowered in _entry_point_names("opentelemetry_traces_sampler"):
            if lowered != raw:
                environ[name] = lowered
        else:
            del environ[name]
            warn(name, raw, "names no installed sampler", repr(_DEFAULT_SAMPLER))
            return
    sampler = (environ.get(name) or "").strip()
    arg_name = "OTEL_TRACES_SAMPLER_ARG"
    arg = _value(environ, arg_name)
    if sampler not in _RATIO_SAMPLERS or arg is None:
        return
    try:
        ratio = float(arg)
    except ValueError:
        ratio = math.nan
    if not 0.0 <= ratio <= 1.0:
        del environ[arg_name]
        warn(arg_name, arg, f"is not a ratio between 0 and 1 for {sampler}", "1.0")


def _endpoints(environ: MutableMapping[str, str], warn: _Warn) -> None:
    for name, signal in _per_signal("ENDPOINT"):
        raw = _value(environ, name)
        if raw is None:
            continue
        value = raw.strip()
        has_scheme = "://" in value
        parts = urlsplit(value if has_scheme else f"//{value}")
        problems: list[str] = []
        userinfo, at, hostport = parts.netloc.rpartition("@")
        if not at:
            hostport = parts.netloc
        rest = urlunsplit(parts._replace(scheme="", netloc=hostport))
        if has_scheme:
            fixed = f"{parts.scheme}://{rest[2:]}"
        elif _protocol_for(environ, signal) == "grpc":
            insecure = (environ.get("OTEL_EXPORTER_OTLP_INSECURE") or "").strip().lower()
            treated = "plaintext" if insecure == "true" else "TLS (https)"
            problems.append(
                f"has no scheme, so the gRPC exporter will use {treated}; write "
                "http://host:port for a plaintext collector or https:// to make TLS explicit"
            )
            fixed = rest[2:]
        else:
            problems.append("has no scheme; the HTTP exporter needs one")
            fixed = f"http:{rest}"
        used = repr(fixed)
        if at:
            used += _move_credentials(environ, name, userinfo)
            problems.append("carries credentials in the URL")
        if fixed != value:
            environ[name] = fixed
        if problems:
            warn(name, raw, " and ".join(problems), used)


def _move_credentials(environ: MutableMapping[str, str], name: str, userinfo: str) -> str:
    """Put ``user:password`` into the headers variable as Basic auth; say where it went."""
    headers_name = name.replace("_ENDPOINT", "_HEADERS")
    headers = environ.get(headers_name, "")
    if "authorization=" in headers.lower():
        return f" (credentials dropped: {headers_name} already has an authorization header)"
    token = base64.b64encode(unquote(userinfo).encode()).decode()
    pair = f"authorization={quote('Basic ' + token)}"
    environ[headers_name] = f"{headers},{pair}" if headers.strip() else pair
    return f" (credentials moved to an authorization header in {headers_name})"


def _disabled_instrumentations(environ: MutableMapping[str, str], warn: _Warn) -> None:
    name = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    raw = _value(environ, name)
    if raw is None:
        return
    known = _entry_point_names("opentelemetry_instrumentor")
    if OWN_SQLALCHEMY_ENTRY_POINT in known:
        known.add("sqlalchemy")  # the distro maps it to otel_db's own SQLAlchemy tracer
    unknown = [n for n in _split(raw) if n != "*" and n not in known]
    if not unknown:
        return
    hints = []
    for typo in unknown:
        close = difflib.get_close_matches(typo.lower(), sorted(known), n=1, cutoff=0.6)
        hints.append(f"{typo!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    warn(
        name,
        raw,
        f"names no installed instrumentation: {', '.join(hints)}",
        f"the list as given; installed: {', '.join(sorted(known))}",
    )
