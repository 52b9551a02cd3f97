"""``otel-db run``: contrib's ``opentelemetry-instrument``, with the environment repaired first.

The stock launcher script imports ``opentelemetry.instrumentation.auto_instrumentation``
at its top; that imports ``opentelemetry.instrumentation.utils``, which imports
``opentelemetry.propagate``, which reads ``OTEL_PROPAGATORS`` at import and raises
``ValueError`` on an unknown name. The launcher dies before any distro code runs (and
the ``sitecustomize`` it puts in the app's path would fail the same way). Upstream
treats an unknown name as an error on purpose (open-telemetry/opentelemetry-python#3259
only made the message clearer; opentelemetry-python-contrib#1743 is the same crash).

``otel-db run`` repairs ``os.environ`` with :func:`otel_db.env_hygiene.repair_environment`
first, and only then imports contrib's launcher and calls its ``run()``, so every option
and behaviour of ``opentelemetry-instrument`` is kept: its ``--<setting>`` flags, the
``PYTHONPATH``/``sitecustomize`` hand-off and the ``exec`` of the app. Values set by
those flags are repaired too, right before the ``exec``.

Each repair is reported once on stderr. A warning about a value the repair leaves as it
was (a scheme-less endpoint, a typo in the disabled instrumentations) would be logged
again by the distro in the app's process, so the launcher leaves that one to the distro.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TextIO

from otel_db.env_hygiene import repair_environment

PROG = "otel-db run"


@contextmanager
def hygiene_logging_muted() -> Iterator[None]:
    """repair_environment logs each warning; here the caller prints them itself."""
    logger = logging.getLogger("otel_db.env_hygiene")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


def repair_quietly(environ: MutableMapping[str, str]) -> tuple[list[str], list[str]]:
    """Repair ``environ``; (every warning, the warnings a second pass would repeat).

    A second pass over the repaired values repeats exactly the warnings about values
    the repair keeps (it warns without changing them); the distro in the app's process
    is such a second pass.
    """
    with hygiene_logging_muted():
        warnings = repair_environment(environ)
        repeated = repair_environment(dict(environ)) if warnings else []
    return warnings, repeated


def repair_process_environment(
    environ: MutableMapping[str, str] | None = None,
    stream: TextIO | None = None,
    *,
    leave_repeats_to_distro: bool = True,
) -> list[str]:
    """Repair ``environ`` (default ``os.environ``) in place; print each warning on
    ``stream`` (default stderr), one line per bad value. Returns what was printed."""
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    warnings, repeated = repair_quietly(environ)
    shown = [w for w in warnings if w not in repeated] if leave_repeats_to_distro else warnings
    for warning in shown:
        stream.write(warning + "\n")
    stream.flush()
    return shown


def _repairing(execl: Callable[..., object]) -> Callable[..., object]:
    """``execl`` with the environment repaired again first: the launcher's
    ``--<setting>`` flags write their values into ``os.environ`` after it parsed them."""

    def repaired_execl(*args: object) -> object:
        repair_process_environment()
        return execl(*args)

    return repaired_execl


def run(arguments: Sequence[str]) -> int | None:
    """``opentelemetry-instrument <arguments>`` after repairing the environment.

    Returns only if the launcher does (``--help``, ``--version`` and argument errors
    exit through ``SystemExit``; on success the process becomes the app).
    """
    repair_process_environment()
    # Only now: importing the launcher imports opentelemetry.propagate.
    from opentelemetry.instrumentation import auto_instrumentation

    from otel_db.compat.verified import shortcut

    # `from os import execl` in contrib: a private detail, patched only on verified
    # contrib versions (elsewhere the environment is repaired once, above, only).
    if shortcut("contrib.launcher.execl") and hasattr(auto_instrumentation, "execl"):
        auto_instrumentation.execl = _repairing(auto_instrumentation.execl)
    sys.argv = [PROG, *arguments]
    return auto_instrumentation.run()
