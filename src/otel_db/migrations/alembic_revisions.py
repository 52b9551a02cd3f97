"""One span per Alembic revision applied, parent of the revision's statements.

Named ``{direction} {revision}`` (``upgrade ae1027a6acf``), with
``otel_db.migration.tool`` (``alembic``), ``.revision``, ``.down_revision`` (merge
revisions: their parents joined by ``,``; absent for the first revision),
``.direction`` (``upgrade`` | ``downgrade``) and ``.message`` (the revision's message).
The span covers the revision's ``upgrade()`` / ``downgrade()`` function: every
statement it runs is a child, and a statement that waited on a lock shows it as any
other (slow, ``lock_timeout``). A failing revision ends its span with the exception
(scrubbed like any database error) and status ERROR. ``stamp`` runs no revision code
and makes no span; offline (``--sql``) runs make spans with no statement children.

Alembic has no public hook before a revision runs (``on_version_apply`` fires after
it), so the step Alembic builds for each revision (``RevisionStep``: its ``revision``,
``is_upgrade`` and ``migration_fn``, unchanged from Alembic 1.7 to 1.x) gets its
function wrapped as it is built. If a future Alembic moves those, the step is left as
it is and revisions run untraced (their statements are still traced).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Collection
from typing import Any, Final

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.pipeline.containment import FAILURES
from otel_db.version import __version__

_logger = logging.getLogger(__name__)

MIGRATION_TOOL: Final = attr.MIGRATION_TOOL
MIGRATION_REVISION: Final = attr.MIGRATION_REVISION
MIGRATION_DOWN_REVISION: Final = attr.MIGRATION_DOWN_REVISION
MIGRATION_DIRECTION: Final = attr.MIGRATION_DIRECTION
MIGRATION_MESSAGE: Final = attr.MIGRATION_MESSAGE
#: Longest revision message kept (it is the user's free text).
MAX_MESSAGE_CHARS: Final = 200


def revision_attributes(script: Any, is_upgrade: bool) -> dict[str, AttributeValue]:
    """The migration attributes of Alembic ``script`` (a ``Script``) run in a direction."""
    out: dict[str, AttributeValue] = {
        MIGRATION_TOOL: "alembic",
        MIGRATION_REVISION: str(script.revision),
        MIGRATION_DIRECTION: "upgrade" if is_upgrade else "downgrade",
    }
    down = getattr(script, "down_revision", None)
    if isinstance(down, (tuple, list)):
        down = ",".join(str(d) for d in down)
    if down:
        out[MIGRATION_DOWN_REVISION] = str(down)
    message = getattr(script, "doc", None)
    if message:
        out[MIGRATION_MESSAGE] = str(message)[:MAX_MESSAGE_CHARS]
    return out


def _traced(function: Callable[..., Any], attributes: dict[str, AttributeValue]) -> Any:
    name = f"{attributes[MIGRATION_DIRECTION]} {attributes[MIGRATION_REVISION]}"

    @functools.wraps(function)  # Alembic names the step after its function
    def run_revision(*args: Any, **kwargs: Any) -> Any:
        tracer = trace.get_tracer(__name__, __version__)
        with tracer.start_as_current_span(name, kind=SpanKind.INTERNAL, attributes=attributes):
            return function(*args, **kwargs)

    run_revision.__otel_db_migration__ = True  # type: ignore[attr-defined]
    return run_revision


def _after_step_init(wrapped: Any, step: Any, args: Any, kwargs: Any) -> None:
    wrapped(*args, **kwargs)
    try:
        function = step.migration_fn
        if getattr(function, "__otel_db_migration__", False):
            return
        attributes = revision_attributes(step.revision, bool(step.is_upgrade))
        step.migration_fn = _traced(function, attributes)
    except Exception as error:  # an unknown Alembic: the revision runs untraced
        FAILURES.report("alembic revision span", error)


class AlembicRevisionInstrumentor(BaseInstrumentor):
    """A span per Alembic revision applied (see the module's documentation). Alembic
    is wrapped when it is imported: an application that has it installed but does not
    migrate never imports it on otel_db's account."""

    _active = False
    _hooked = False
    _wrapped_class: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("alembic >= 1.7",)

    def _instrument(self, **kwargs: Any) -> None:
        AlembicRevisionInstrumentor._active = True
        if not AlembicRevisionInstrumentor._hooked:
            AlembicRevisionInstrumentor._hooked = True
            wrapt.register_post_import_hook(_wrap_steps, _MODULE)
        elif _MODULE in sys.modules:  # instrumented again after uninstrument
            _wrap_steps(sys.modules[_MODULE])

    def _uninstrument(self, **kwargs: Any) -> None:
        AlembicRevisionInstrumentor._active = False
        step = AlembicRevisionInstrumentor._wrapped_class
        current = step.__dict__.get("__init__") if step is not None else None
        if current is not None and hasattr(current, "__wrapped__"):
            step.__init__ = current.__wrapped__
            AlembicRevisionInstrumentor._wrapped_class = None


_MODULE: Final = "alembic.runtime.migration"


def _wrap_steps(module: Any) -> None:
    if not AlembicRevisionInstrumentor._active or AlembicRevisionInstrumentor._wrapped_class:
        return
    step = getattr(module, "RevisionStep", None)
    if step is None:
        _logger.debug("otel_db: this Alembic has no RevisionStep; revisions untraced")
        return
    try:
        wrapt.wrap_function_wrapper(step, "__init__", _after_step_init)
        AlembicRevisionInstrumentor._wrapped_class = step
    except Exception as error:
        FAILURES.report("alembic revision spans", error)
