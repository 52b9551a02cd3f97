"""Keeps statement and parameter values out of error messages, statuses and stacktraces.

Database errors quote the values they choke on (PostgreSQL ``DETAIL: Key
(email)=(...)``, ``invalid input syntax ... "hunter2"``, sqlite ``no such column:
hunter2``, MySQL ``Duplicate entry 'x'``), and SQLAlchemy adds the whole statement
and its parameters to its own messages. Those messages reach three exported fields:
the status description, the exception event's message and the last lines of its
stacktrace (whose source lines may quote the statement too). This step rewrites all
three on database spans, and on any other span that recorded a database error (the
request span an ``IntegrityError`` escaped through).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from opentelemetry.sdk.trace import Event
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db.pipeline.db_span import db_system
from otel_db.pipeline.draft import SpanDraft
from otel_db.pipeline.enricher import EndFilter, SpanEnricher
from otel_db.sql.errors import classify_exception_event, scrub_error_message

EXCEPTION_TYPE: Final = "exception.type"
EXCEPTION_MESSAGE: Final = "exception.message"
EXCEPTION_STACKTRACE: Final = "exception.stacktrace"

# SQLAlchemy's statement tail, and PostgreSQL's "LINE 3: <echoed statement>": removed
# with OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT=false.
_SA_SQL: Final = re.compile(
    r"^\[SQL: (?P<sql>.*?)\]$(?=\n\[parameters|\n\(Background|\n*\Z)", re.M | re.S
)
STATEMENT_REMOVED: Final = "[SQL: ?]"
_ECHO_LINE: Final = re.compile(r"^(\s*LINE \d+:).*$", re.M)
_SQLALCHEMY: Final = "sqlalchemy."

# The parts of a Python traceback that hold code, not values.
_FRAME_LINE: Final = re.compile(r'^  File "[^"\n]*", line \d+, in [^\n]*$')
_TRACEBACK_HEAD: Final = "Traceback (most recent call last):"
_CHAIN_LINES: Final = frozenset(
    {
        "During handling of the above exception, another exception occurred:",
        "The above exception was the direct cause of the following exception:",
    }
)


def drop_statement_echo(message: str) -> str:
    """``message`` without the statement SQLAlchemy and PostgreSQL echo in it
    (``OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT=false``)."""
    if "[SQL: " in message:
        message = _SA_SQL.sub(STATEMENT_REMOVED, message)
    if "LINE " in message:
        message = _ECHO_LINE.sub(r"\1 ?", message)
    return message


def scrub_message(message: str, system: str | None = None, keep_statement: bool = True) -> str:
    """``message`` without the values it quotes; SQLAlchemy's statement echo sanitized
    under ``system``'s rules (the span's ``db.system.name``), or removed unless
    ``keep_statement``, and its parameter list removed. Never raises (the library parts
    never do)."""
    if not keep_statement:
        message = drop_statement_echo(message)
    return scrub_error_message(message, system)


def scrub_stacktrace(stacktrace: str, exception_type: str, scrubbed_message: str) -> str:
    """The stacktrace's frame lines only, ending with the type and scrubbed message.

    Source lines are dropped (they may quote the statement: ``cur.execute("... 'x'")``)
    and so are the messages of chained exceptions, which cannot be told apart from
    the code reliably; their types stay visible through the frame lines' functions.
    """
    out: list[str] = []
    for line in stacktrace.splitlines():
        if line == _TRACEBACK_HEAD or _FRAME_LINE.match(line):
            out.append(line)
        elif line in _CHAIN_LINES:
            out.extend(("[exception message removed by otel_db]", "", line, ""))
    out.append(f"{exception_type}: {scrubbed_message}" if scrubbed_message else exception_type)
    return "\n".join(out)


def _scrub_event(event: Event, system: str | None, keep_statement: bool = True) -> Event:
    attributes = dict(event.attributes or {})
    message = attributes.get(EXCEPTION_MESSAGE)
    scrubbed = scrub_message(message, system, keep_statement) if isinstance(message, str) else ""
    if isinstance(message, str):
        attributes[EXCEPTION_MESSAGE] = scrubbed
    stacktrace = attributes.get(EXCEPTION_STACKTRACE)
    if isinstance(stacktrace, str):
        exception_type = str(attributes.get(EXCEPTION_TYPE, "") or "")
        attributes[EXCEPTION_STACKTRACE] = scrub_stacktrace(stacktrace, exception_type, scrubbed)
    return Event(event.name, attributes, event.timestamp)


def _is_database_error(attributes: Mapping[str, AttributeValue] | None) -> bool:
    exception_type = (attributes or {}).get(EXCEPTION_TYPE)
    if not isinstance(exception_type, str):
        return False
    if exception_type.startswith(_SQLALCHEMY):  # its messages echo statement and parameters
        return True
    message = (attributes or {}).get(EXCEPTION_MESSAGE)
    return classify_exception_event(exception_type, str(message or "")) is not None


class ErrorMessageScrubber(SpanEnricher):
    """Scrubs the status description and exception events of spans with database errors."""

    name = "error-message-scrubber"
    end_filter = EndFilter(troubled_only=True)

    def __init__(self, keep_statement: bool = True) -> None:
        # False with OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT=false: echoed statements go too.
        self.keep_statement = keep_statement

    def on_end(self, draft: SpanDraft) -> None:
        span = draft.span
        status = span.status
        if status.status_code is not StatusCode.ERROR and not draft.has_events:
            return  # most spans: no copy of the events list
        events: Sequence[Event] = span.events
        system = db_system(draft.attributes)
        database_span = system is not None
        scrubbed_any = False
        new_events: list[Event] = []
        for event in events:
            if event.name == "exception" and (
                database_span or _is_database_error(event.attributes)
            ):
                new_events.append(_scrub_event(event, system, self.keep_statement))
                scrubbed_any = True
            else:
                new_events.append(event)
        if scrubbed_any:
            draft.replace_events(new_events)
        description = status.description
        if description and (database_span or scrubbed_any):
            scrubbed = scrub_message(description, system, self.keep_statement)
            if scrubbed != description:
                draft.set_status(Status(status.status_code, scrubbed))
