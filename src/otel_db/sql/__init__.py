"""Pure SQL, Redis-command and database-error analysis.

Nothing here touches OpenTelemetry: the span pipeline calls
:func:`otel_db.sql.analysis.analyze_statement`,
:func:`otel_db.sql.errors.classify_exception` and friends and writes the results
under the names in :mod:`otel_db.attributes`.
"""

from __future__ import annotations

from otel_db.sql.analysis import StatementShape, analyze_redis_command, analyze_statement
from otel_db.sql.errors import (
    ErrorFacts,
    classify_exception,
    classify_exception_event,
    scrub_error_message,
)
from otel_db.sql.fingerprint import fingerprint
from otel_db.sql.parameters import capture_parameters
from otel_db.sql.sanitize import sanitize

__all__ = [
    "ErrorFacts",
    "StatementShape",
    "analyze_redis_command",
    "analyze_statement",
    "capture_parameters",
    "classify_exception",
    "classify_exception_event",
    "fingerprint",
    "sanitize",
    "scrub_error_message",
]
