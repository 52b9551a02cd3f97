"""Keeps failures of otel_db's own code away from the application."""

from __future__ import annotations

import logging
import threading

_logger = logging.getLogger("otel_db")

_MAX_REMEMBERED = 256


class FailureLog:
    """Logs each distinct internal failure once, with a bounded memory of what it logged.

    Hooks run for every statement: a bug that fires on each one must not flood the
    application's logs, nor grow a set without bound.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.count = 0

    def report(self, where: str, error: BaseException) -> None:
        key = (where, type(error).__name__)
        with self._lock:
            self.count += 1
            if key in self._seen:
                return
            if len(self._seen) < _MAX_REMEMBERED:
                self._seen.add(key)
        _logger.warning(
            "otel_db: %s failed and was skipped (%s: %s); the application is unaffected, "
            "this span is exported without that step. Further failures of this kind are "
            "counted, not logged.",
            where,
            type(error).__name__,
            error,
            exc_info=error,
        )


FAILURES = FailureLog()
