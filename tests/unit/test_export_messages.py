from __future__ import annotations

import logging

import pytest

from otel_db.env_hygiene import repair_environment
from otel_db.export.report import ERRORS, ExportReport, export_failure_cause

GRPC_REFUSED = (
    "Transient error StatusCode.UNAVAILABLE encountered while exporting traces to "
    "127.0.0.1:4999, retrying in 0.95s. Error details: failed to connect to all addresses; "
    "last error: UNKNOWN: ipv4:127.0.0.1:4999: Failed to connect to remote host: "
    "Connection refused"
)
HTTP_REFUSED = (
    "Transient error HTTPConnectionPool(host='127.0.0.1', port=4999): Max retries exceeded "
    "with url: /v1/traces (Caused by NewConnectionError(\"HTTPConnection(host='127.0.0.1', "
    'port=4999): Failed to establish a new connection: [Errno 111] Connection refused"))'
)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (GRPC_REFUSED, "connection refused (nothing listens at that address)"),
        (HTTP_REFUSED, "connection refused (nothing listens at that address)"),
        (
            "Failed to export span batch code: 401, reason: Unauthorized",
            "the collector answered HTTP 401 Unauthorized",
        ),
        (
            "Failed to export traces to x:4317, error code: StatusCode.UNAUTHENTICATED",
            "the collector answered gRPC UNAUTHENTICATED",
        ),
        (
            "Transient error StatusCode.DEADLINE_EXCEEDED encountered while exporting",
            "timed out (gRPC DEADLINE_EXCEEDED)",
        ),
        (
            "HTTPSConnectionPool(host='x', port=4318): Read timed out. (read timeout=10)",
            "timed out",
        ),
        (
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
            "TLS failure (certificate, or TLS on one side only)",
        ),
        ("Shutdown in progress, aborting retry.", None),
        (None, None),
    ],
)
def test_export_failure_cause_names_the_real_cause(error, cause):
    assert export_failure_cause(error) == cause


def test_shutdown_in_progress_does_not_hide_the_error_before_it():
    logger = logging.getLogger("opentelemetry.exporter.otlp.proto.grpc.exporter")
    ERRORS.last_error = None
    record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, GRPC_REFUSED, (), None)
    ERRORS.filter(record)
    shutdown = logger.makeRecord(
        logger.name, logging.WARNING, __file__, 1, "Shutdown in progress, aborting retry.", (), None
    )
    ERRORS.filter(shutdown)
    assert ERRORS.last_error == GRPC_REFUSED
    ERRORS.last_error = None


def _at_exit_lines(caplog, report: ExportReport, lost: int, why: str) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="otel_db.export"):
        report.at_exit(lost, why)
    return [r.getMessage() for r in caplog.records if r.name == "otel_db.export"]


def test_at_exit_names_the_cause_and_says_nothing_when_nothing_was_lost(caplog):
    report = ExportReport("OTLPSpanExporter 127.0.0.1:4999")
    assert _at_exit_lines(caplog, report, 0, "the exit bound was reached") == []

    report.last_reason = GRPC_REFUSED
    [line] = _at_exit_lines(caplog, report, 3, "the collector did not answer")
    assert line.startswith(
        "otel_db: at exit, 3 spans could not be exported to OTLPSpanExporter 127.0.0.1:4999: "
        "connection refused"
    )
    assert "did not answer" not in line and "dropped" not in line

    dropped_only = ExportReport("x")
    dropped_only.dropped_overflow = 7
    [line] = _at_exit_lines(caplog, dropped_only, 0, "the exit bound was reached")
    assert "could not be exported" not in line and "0 spans" not in line
    assert "7 spans were dropped earlier because the export buffer was full" in line


def test_a_misspelled_exporter_says_the_closest_name_and_the_default_destination():
    environ = {"OTEL_TRACES_EXPORTER": "otel_db_termnial"}
    [warning] = repair_environment(environ)
    assert environ["OTEL_TRACES_EXPORTER"] == "otlp"
    assert "'otel_db_termnial' (did you mean 'otel_db_terminal'?)" in warning
    assert "using 'otlp', which sends to a collector at http://localhost:4317" in warning
    environ = {"OTEL_TRACES_EXPORTER": "zipkn", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    [warning] = repair_environment(environ)
    assert "http://localhost:4318/v1/traces" in warning
