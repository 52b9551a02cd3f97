"""What could not be exported and why, in one line, rate-limited."""

from __future__ import annotations

import logging
import re
import threading
import time

from otel_db.env_hygiene import mask_credentials

_logger = logging.getLogger("otel_db.export")

#: Loggers of the OTLP exporters, whose last error line is the "why" of a failed batch.
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
)

#: Logger of the SDK's OTEL_EXPORTER_OTLP_*_HEADERS parser: on a malformed entry it
#: prints the whole ``name=value`` pair, i.e. the token of an ``authorization`` header.
HEADER_PARSER_LOGGER = "opentelemetry.util.re"

REPORT_INTERVAL_S = 60.0

_NOT_A_CAUSE = ("Shutdown in progress",)

_HTTP_STATUS = re.compile(r"\bcode: (\d{3})(?:, reason: ([^,.]*))?")
_GRPC_STATUS = re.compile(r"StatusCode\.([A-Z_]+)")
_REFUSED = ("connection refused", "econnrefused", "errno 111", "actively refused")
_UNRESOLVED = (
    "name or service not known",
    "nodename nor servname",
    "dns resolution failed",
    "temporary failure in name resolution",
    "getaddrinfo",
)
_TLS = ("ssl", "tls", "certificate", "handshake")
_TIMED_OUT = ("timed out", "timeout", "deadline_exceeded", "deadline exceeded")


def export_failure_cause(error: str | None) -> str | None:
    """The cause of a failed export in a few words (refused, timed out, TLS failure,
    HTTP or gRPC status), from the exporter's error text; None when it does not say."""
    if not error:
        return None
    lowered = error.lower()
    if any(word in lowered for word in _REFUSED):
        return "connection refused (nothing listens at that address)"
    if any(word in lowered for word in _UNRESOLVED):
        return "the collector's host name does not resolve"
    if any(word in lowered for word in _TLS):
        return "TLS failure (certificate, or TLS on one side only)"
    http = _HTTP_STATUS.search(error)
    if http:
        reason = (http.group(2) or "").strip()
        return f"the collector answered HTTP {http.group(1)}" + (f" {reason}" if reason else "")
    grpc = _GRPC_STATUS.search(error)
    if grpc and grpc.group(1) != "UNAVAILABLE":
        if grpc.group(1) == "DEADLINE_EXCEEDED":
            return "timed out (gRPC DEADLINE_EXCEEDED)"
        return f"the collector answered gRPC {grpc.group(1)}"
    if any(word in lowered for word in _TIMED_OUT):
        return "timed out"
    if grpc:
        return "the collector is unavailable (gRPC UNAVAILABLE)"
    return None


def is_refused(error: str | None) -> bool:
    """Nothing listens at the collector's address: retrying at exit cannot help."""
    return bool(error) and any(word in error.lower() for word in _REFUSED)


def _spans(count: int) -> str:
    return "1 span" if count == 1 else f"{count} spans"


class ExporterErrorCapture(logging.Filter):
    """Remembers the exporters' last warning/error (masked) without changing their output.

    A filter rather than a handler: adding a handler would silence the records for an
    app that configured no logging (Python's last-resort handler only runs when no
    handler exists anywhere up the chain).
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_error: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            try:
                message = record.getMessage()
            except Exception:
                return True
            masked = mask_credentials(message)
            if masked != message:  # never let a URL's user:password reach a log line
                record.msg, record.args = masked, None
            # The exporter's "Shutdown in progress, aborting retry." says nothing about
            # why the export failed: keep the error that does.
            if not masked.startswith(_NOT_A_CAUSE):
                self.last_error = masked[:300]
        return True


ERRORS = ExporterErrorCapture()


def mask_header_value(pair: str) -> str:
    """``name=value`` → ``name=***``: any header value may be a credential."""
    name, equals, _value = pair.partition("=")
    return f"{name.strip()}=***" if equals else "***"


class HeaderValueMask(logging.Filter):
    """Masks the header pairs the SDK's header parser puts in its warnings.

    The parser logs ``... must be URL encoded ...: %s`` with the offending pair as the
    argument; the pair is replaced by ``name=***`` and the message itself kept, so the
    user still learns which header is malformed.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            args = record.args
            if isinstance(args, tuple) and args:
                record.args = tuple(mask_header_value(a) if isinstance(a, str) else a for a in args)
            elif isinstance(record.msg, str) and not args and "=" in record.msg:
                head, sep, pair = record.msg.rpartition(": ")
                if sep:
                    record.msg = f"{head}{sep}{mask_header_value(pair)}"
        except Exception:  # a masking bug must not lose the record
            record.msg, record.args = "otel_db: an OTLP header could not be parsed", None
        return True


HEADERS = HeaderValueMask()


def attach_secret_masking() -> None:
    """Mask header values in the SDK header parser's warnings (idempotent).

    Call it before the exporters are built: they parse OTEL_EXPORTER_OTLP_*_HEADERS in
    their constructor, so a filter attached later misses the first exporter's warning.
    """
    parser_logger = logging.getLogger(HEADER_PARSER_LOGGER)
    if HEADERS not in parser_logger.filters:
        parser_logger.addFilter(HEADERS)


def attach_error_capture() -> None:
    attach_secret_masking()
    for name in EXPORTER_LOGGERS:
        exporter_logger = logging.getLogger(name)
        if ERRORS not in exporter_logger.filters:
            exporter_logger.addFilter(ERRORS)


class ExportReport:
    """Counters of one processor and the lines that tell the user about them."""

    def __init__(self, target: str, interval_s: float = REPORT_INTERVAL_S) -> None:
        self.target = target
        self.interval_s = interval_s
        self.exported = 0
        self.failed_attempts = 0
        self.dropped_overflow = 0
        #: Spans the exporter raised on even when sent alone (see ResilientBatchProcessor).
        self.dropped_unexportable = 0
        self.lost_at_exit = 0
        self.last_reason: str | None = None
        self._failing_since: float | None = None
        self._last_line = 0.0
        self._dropped_reported = 0
        self._last_drop_line = 0.0
        self._lock = threading.Lock()

    def check_drops(self, capacity: int) -> None:
        """Say (rate-limited) that the buffer overflowed; on_end only counts, never logs."""
        now = time.monotonic()
        with self._lock:
            new = self.dropped_overflow - self._dropped_reported
            if new <= 0 or (self._last_drop_line and now - self._last_drop_line < self.interval_s):
                return
            self._dropped_reported = self.dropped_overflow
            self._last_drop_line = now
        _logger.warning(
            "otel_db: %d spans dropped (oldest first) because the export buffer of %d spans "
            "to %s was full; %d dropped in total. Raise OTEL_BSP_MAX_QUEUE_SIZE to keep more.",
            new,
            capacity,
            self.target,
            self.dropped_overflow,
        )

    def failure(self, reason: str, pending: int, capacity: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.failed_attempts += 1
            self.last_reason = reason
            first = self._failing_since is None
            if first:
                self._failing_since = now
            due = first or now - self._last_line >= self.interval_s
            if due:
                self._last_line = now
        if due:
            _logger.warning(
                "otel_db: exporting spans to %s is failing (%s); %d spans kept for retry "
                "(buffer %d/%d), %d dropped so far (buffer full). Retrying with backoff.",
                self.target,
                reason,
                pending,
                pending,
                capacity,
                self.dropped_overflow,
            )

    def success(self, count: int) -> None:
        with self._lock:
            self.exported += count
            recovered = self._failing_since is not None
            outage = time.monotonic() - self._failing_since if recovered else 0.0
            self._failing_since = None
        if recovered:
            _logger.warning(
                "otel_db: exporting spans to %s works again after %.1f s; %d spans dropped "
                "during the outage (buffer full).",
                self.target,
                outage,
                self.dropped_overflow,
            )

    def at_exit(self, lost: int, why: str) -> None:
        """One line at exit, only when something was lost: how many, where, and the
        cause (refused, timed out, TLS, HTTP/gRPC status) before the raw last error."""
        self.lost_at_exit += lost
        if not lost and not self.dropped_overflow:
            return
        parts: list[str] = []
        if lost:
            cause = export_failure_cause(self.last_reason) or why
            parts.append(f"{_spans(lost)} could not be exported to {self.target}: {cause}")
        if self.dropped_overflow:
            parts.append(
                f"{_spans(self.dropped_overflow)} were dropped earlier because the export "
                "buffer was full (OTEL_BSP_MAX_QUEUE_SIZE)"
            )
        last = f" Last export error: {self.last_reason}" if self.last_reason else ""
        _logger.warning(
            "otel_db: at exit, %s; %d were exported.%s",
            "; ".join(parts),
            self.exported,
            last,
        )
