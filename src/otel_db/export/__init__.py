"""Getting spans out: a batching processor that survives collector outages, bounds the
time the process spends exporting at exit or on SIGTERM, and says what it could not
deliver and why."""

from otel_db.export.exit import install_exit_handling
from otel_db.export.report import attach_secret_masking
from otel_db.export.resilient import ResilientBatchProcessor

__all__ = ["ResilientBatchProcessor", "attach_secret_masking", "install_exit_handling"]
