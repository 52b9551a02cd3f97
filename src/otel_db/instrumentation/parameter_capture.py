"""``OTEL_PYTHON_DB_CAPTURE_PARAMETERS``: bound parameters as ``db.query.parameter.<key>``.

Off by default: parameters are exactly the values sanitizing keeps out of the spans.
When on, :func:`otel_db.sql.parameters.capture_parameters` does the recording (values
cut to 256 characters, at most 32 parameters, secret-looking names always redacted).

- SQLAlchemy: :func:`capture_statement_parameters` is a ``StatementHooks.on_start``
  hook and sees the real parameter objects. For ``executemany`` only the first row is
  recorded (``db.operation.batch.size`` tells how many there were).
- psycopg2 (contrib's spans): otel_db's cursor class under contrib's traced cursor
  (``instrumentation/psycopg2.py``) records the real parameter objects on contrib's
  statement span, which is the current span there. (contrib's own
  ``capture_parameters`` option is not used: it writes ``str(params)``, which would
  have to be parsed back per statement, and loses dates and decimals.)
  For ``executemany`` only the first row is recorded, and only when the rows are a
  list or tuple: an iterator is never consumed. Positional parameters have no names,
  so only named (``%(name)s``) ones can be redacted by name.
- Any contrib DB-API span carrying ``db.statement.parameters`` (an instrumentor the
  application configured itself with ``capture_parameters=True``):
  :class:`ContribParameterEnricher` turns the string back into values with
  ``ast.literal_eval`` and records them the same way, dropping what it cannot read;
  with capture off the attribute is removed.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from otel_db.pipeline.deferred import DEFERRED
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import EndFilter, SpanEnricher
from otel_db.sql.parameters import capture_parameters

#: The attribute contrib's DB-API instrumentation writes when asked to capture.
CONTRIB_PARAMETERS_ATTRIBUTE: Final = "db.statement.parameters"
_MAX_LITERAL_CHARS: Final = 16 * 1024


def capture_statement_parameters(
    span: Span, connection: Any, context: Any, statement: str, parameters: Any
) -> None:
    """SQLAlchemy start hook: record the statement's bound parameters on its span."""
    if getattr(context, "executemany", False) and isinstance(parameters, (list, tuple)):
        parameters = parameters[0] if parameters else None
    captured = capture_parameters(parameters)
    if captured:
        DEFERRED.add(span, captured)


def first_row(rows: Any) -> Any:
    """The row ``executemany`` records: the first of a list or tuple, else None (an
    iterator or generator must not be consumed by the tracer)."""
    if isinstance(rows, (list, tuple)) and rows:
        return rows[0]
    return None


def statement_parameters(args: Sequence[Any], kwargs: Mapping[str, Any], name: str) -> Any:
    """A DB-API call's parameters: its second positional argument or keyword ``name``."""
    if len(args) > 1:
        return args[1]
    return kwargs.get(name)


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
    # contrib writes it on its statement spans, when the application asked it to.
    end_filter = EndFilter(client_only=True, requires=CONTRIB_PARAMETERS_ATTRIBUTE)

    def __init__(self, capture: bool) -> None:
        self.capture = capture

    def on_end(self, draft: SpanDraft) -> None:
        if CONTRIB_PARAMETERS_ATTRIBUTE in draft.attributes:
            self.on_client_end(draft.span, draft.span_id, draft.writable_attributes())

    def on_client_end(
        self, span: ReadableSpan, span_id: int, attributes: dict[str, AttributeValue]
    ) -> str | None:
        raw = attributes.pop(CONTRIB_PARAMETERS_ATTRIBUTE, None)
        if self.capture and isinstance(raw, str):
            attributes.update(capture_parameters(parse_contrib_parameters(raw)))
        return None
