"""``otel_db.configure()``: the launcher's start-up, for apps that cannot use it."""

from __future__ import annotations

import logging
import threading

from opentelemetry.instrumentation.auto_instrumentation._load import _load_instrumentors
from opentelemetry.instrumentation.version import __version__ as _instrumentation_version

from otel_db.configurator import OtelDbConfigurator
from otel_db.distro import OtelDbDistro

_logger = logging.getLogger(__name__)
_lock = threading.Lock()
_done = False


def configure() -> None:
    """Set up otel_db exactly as ``opentelemetry-instrument`` does; later calls do nothing.

    Call it before the application imports or creates its database clients, so that
    connection factories are wrapped before the first connection is made.
    """
    global _done
    with _lock:
        if _done:
            _logger.debug("otel_db.configure() was already called; ignoring")
            return
        distro = OtelDbDistro()
        distro.configure()
        OtelDbConfigurator().configure(auto_instrumentation_version=_instrumentation_version)
        _load_instrumentors(distro)
        _done = True
