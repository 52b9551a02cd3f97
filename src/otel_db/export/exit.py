"""Bounded exit: at interpreter exit and on SIGTERM, flush within one deadline.

The SDK's own exit hooks wait as long as each exporter does (the metrics reader alone
adds several seconds with a dead collector). otel_db's hook runs first and gives every
exporting processor, then the meter provider, what is left of ONE deadline
(``OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS``, default 5 s); the SDK's later hooks then find
everything shut down and return at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from otel_db.compat.verified import shortcut
from otel_db.export.resilient import live_processors

_ATEXIT = "sdk.provider.atexit"

_logger = logging.getLogger("otel_db.export")

_lock = threading.Lock()
_bound_s = 5.0
_deadline: float | None = None
_atexit_registered = False
_sigterm_installed = False


def install_exit_handling(bound_s: float) -> None:
    """Set the exit bound and take over SIGTERM (chaining to the previous handler)."""
    global _bound_s, _sigterm_installed
    _bound_s = bound_s
    with _lock:
        if _sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        try:
            previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _make_sigterm_handler(previous))
            _sigterm_installed = True
        except (ValueError, OSError) as error:  # not the main interpreter, etc.
            _logger.debug("otel_db: SIGTERM handler not installed: %r", error)


def ensure_exit_hook() -> None:
    """Register the exit hook; called once configuration is over, so it runs FIRST.

    atexit runs hooks last-registered-first. Registering when the first span ends (or
    the export thread first wakes) puts otel_db's hook after the SDK providers' own.
    """
    global _atexit_registered
    if _atexit_registered:
        return
    with _lock:
        if not _atexit_registered:
            atexit.register(bounded_exit)
            _atexit_registered = True


def _exit_deadline() -> float:
    global _deadline
    now = time.monotonic()
    with _lock:
        if _deadline is None or _deadline <= now:
            _deadline = now + _bound_s
        return _deadline


def bounded_exit() -> None:
    """Shut down the tracer provider, then the meter provider, within one deadline.

    The whole tracer provider, not only otel_db's exporting processors: stages in front
    of them (e.g. spans held until their transaction ends) release what they hold on
    shutdown, and that must still reach an open exporter.
    """
    deadline = _exit_deadline()
    from opentelemetry import trace

    _shutdown_provider(trace.get_tracer_provider(), deadline, "traces")
    for processor in live_processors():  # whatever the provider did not reach in time
        try:
            processor.shutdown_until(deadline)
        except Exception as error:
            _logger.debug("otel_db: bounded shutdown of %r failed: %r", processor, error)
    from opentelemetry import metrics

    _shutdown_provider(metrics.get_meter_provider(), deadline, "metrics")


def current_exit_deadline() -> float | None:
    """The deadline of an exit in progress, for processors shut down by the provider."""
    deadline = _deadline
    return deadline if deadline is not None and deadline > time.monotonic() else None


def _shutdown_provider(provider: Any, deadline: float, signal_name: str) -> None:
    shutdown = getattr(provider, "shutdown", None)
    if not callable(shutdown) or getattr(provider, "_otel_db_exited", False):
        return
    if getattr(provider, "_shutdown", False) is True:  # MeterProvider: already shut down
        return
    provider._otel_db_exited = True
    # The SDK's private handler: on unverified SDK versions it is left registered (the
    # provider's second shutdown at exit is then the SDK's own no-op or warning).
    handler = getattr(provider, "_atexit_handler", None) if shortcut(_ATEXIT) else None
    if handler is not None:  # it would wait again, unbounded, after us
        atexit.unregister(handler)
        provider._atexit_handler = None
    remaining_s = deadline - time.monotonic()
    if remaining_s <= 0.05:
        _logger.warning(
            "otel_db: no time left in the exit bound (OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS) "
            "for the %s exporters; what they hold is not exported",
            signal_name,
        )
        return

    def shutdown_quietly() -> None:
        try:
            if signal_name == "metrics":
                shutdown(timeout_millis=remaining_s * 1000)
            else:
                shutdown()
        except Exception as error:
            _logger.debug("otel_db: %s provider shutdown failed: %r", signal_name, error)

    worker = threading.Thread(target=shutdown_quietly, name="otel_db-exit", daemon=True)
    worker.start()
    worker.join(remaining_s)
    if worker.is_alive():
        _logger.warning(
            "otel_db: the %s exporters did not finish within the exit bound "
            "(OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS); what they hold is not exported",
            signal_name,
        )


def _make_sigterm_handler(previous: Any) -> Callable[[int, Any], None]:
    def on_sigterm(signum: int, frame: Any) -> None:
        try:
            if callable(previous):
                # The app handles SIGTERM itself and may keep running: flush, not stop.
                deadline = _exit_deadline()
                for processor in live_processors():
                    processor.flush_until(deadline)
            elif previous != signal.SIG_IGN:
                bounded_exit()
        except Exception as error:  # never let the handler itself fail the app
            _logger.debug("otel_db: SIGTERM flush failed: %r", error)
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:  # default: die of SIGTERM, as the process would have without otel_db
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    on_sigterm.otel_db_previous = previous  # type: ignore[attr-defined]
    return on_sigterm
