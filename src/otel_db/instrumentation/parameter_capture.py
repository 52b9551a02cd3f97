"""``OTEL_PYTHON_DB_CAPTURE_PARAMETERS``: bound parameters as ``db.query.parameter.<key>``.

Off by default: parameters are exactly the values sanitizing keeps out of the spans.
When on, :func:`otel_db.sql.parameters.capture_parameters` does the recording (values
cut to 256 characters, at most 32 parameters, secret-looking names always redacted).

- SQLAlchemy: :func:`capture_statement_parameters` is a ``StatementHooks.on_start``
  hook and sees the real parameter objects. For ``executemany`` only the first row is
  recorded (``db.operation.batch.size`` tells how many there were).
- contrib psycopg2 spans: the distro asks contrib for its own
  ``capture_parameters`` option, which writes one string attribute,
  ``db.statement.parameters`` = ``str(params)``. :class:`ContribParameterEnricher`
  turns it back into values with ``ast.literal_eval`` (plain tuples and dicts of
  numbers, strings, None, booleans) and records them like SQLAlchemy's; a string it
  cannot read (dates, decimals, custom objects) is dropped rather than exported raw.
  Positional parameters have no names, so only named (``%(name)s``) ones can be
  redacted by name. With capture off, a ``db.statement.parameters`` attribute from
  anywhere is removed.
"""

from __future__ import annotations

import ast
from typing import Any, Final

from opentelemetry.trace import Span

from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import SpanEnricher
from otel_db.settings import Settings
from otel_db.sql.parameters import capture_parameters

#: The attribute contrib's DB-API instrumentation writes when asked to capture.
CONTRIB_PARAMETERS_ATTRIBUTE: Final = "db.statement.parameters"
#: Contrib instrumentations (entry point names) with a ``capture_parameters`` option.
CONTRIB_CAPTURE_INSTRUMENTATIONS: Final = frozenset({"psycopg2"})
_MAX_LITERAL_CHARS: Final = 16 * 1024


def capture_statement_parameters(
    span: Span, connection: Any, context: Any, statement: str, parameters: Any
) -> None:
    """SQLAlchemy start hook: record the statement's bound parameters on its span."""
    if getattr(context, "executemany", False) and isinstance(parameters, (list, tuple)):
        parameters = parameters[0] if parameters else None
    captured = capture_parameters(parameters)
    if captured:
        span.set_attributes(captured)


def parse_contrib_parameters(text: str) -> Any:
    """The parameters contrib wrote with ``str(params)``, or None when unreadable."""
    if len(text) > _MAX_LITERAL_CHARS:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (tuple, list, dict)) else None


class ContribParameterEnricher(SpanEnricher):
    """Rewrites contrib's ``db.statement.parameters`` into ``db.query.parameter.<key>``."""

    name = "parameter-capture"

    def __init__(self, capture: bool) -> None:
        self.capture = capture

    def on_end(self, draft: SpanDraft) -> None:
        raw = draft.attributes.get(CONTRIB_PARAMETERS_ATTRIBUTE)
        if raw is None:
            return
        draft.remove_attribute(CONTRIB_PARAMETERS_ATTRIBUTE)
        if self.capture and isinstance(raw, str):
            draft.set_attributes(capture_parameters(parse_contrib_parameters(raw)))


def instrumentor_options(entry_point_name: str, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for a contrib instrumentor's ``instrument()`` call."""
    if settings.capture_parameters and entry_point_name in CONTRIB_CAPTURE_INSTRUMENTATIONS:
        return {"capture_parameters": True}
    return {}
