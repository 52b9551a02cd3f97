"""The query-intelligence enrichers on hand-made spans: text, summary, name, errors."""

from __future__ import annotations

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

from otel_db import attributes as attr
from otel_db.enrichers.db_errors import DatabaseErrorEnricher
from otel_db.enrichers.query_sanitizer import ErrorMessageScrubber, scrub_stacktrace
from otel_db.enrichers.query_shape import QueryShapeEnricher, redis_shape
from otel_db.instrumentation.parameter_capture import (
    CONTRIB_PARAMETERS_ATTRIBUTE,
    ContribParameterEnricher,
)
from otel_db.pipeline.draft import SpanDraft

_CONTEXT = SpanContext(trace_id=1, span_id=2, is_remote=False)


def _span(name="select", attributes=None, kind=SpanKind.CLIENT, status=None, events=()):
    return ReadableSpan(
        name=name,
        context=_CONTEXT,
        attributes=attributes or {},
        kind=kind,
        status=status or Status(StatusCode.UNSET),
        events=events,
        start_time=1,
        end_time=2,
    )


def _run(enricher, span):
    draft = SpanDraft(span)
    enricher.on_end(draft)
    return draft.build()


def test_literals_become_placeholders_and_the_span_is_named_by_its_summary():
    span = _span(
        attributes={
            attr.DB_SYSTEM_NAME: "postgresql",
            attr.DB_QUERY_TEXT: "SELECT * FROM users WHERE email = 'alice@example.com' AND id = 42",
        }
    )
    out = _run(QueryShapeEnricher(), span)
    assert out.attributes[attr.DB_QUERY_TEXT] == "SELECT * FROM users WHERE email = ? AND id = ?"
    assert out.attributes[attr.DB_QUERY_SUMMARY] == "SELECT users"
    assert out.attributes[attr.DB_COLLECTION_NAME] == "users"
    assert len(out.attributes[attr.QUERY_FINGERPRINT]) == 16
    assert out.name == "SELECT users"


def test_parameterized_text_is_kept_and_two_literals_share_a_fingerprint():
    text = "SELECT id FROM orders WHERE user_id = %(user_id)s"
    kept = _run(
        QueryShapeEnricher(),
        _span(attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.DB_QUERY_TEXT: text}),
    )
    assert kept.attributes[attr.DB_QUERY_TEXT] == text
    one, two = (
        _run(
            QueryShapeEnricher(),
            _span(
                attributes={
                    attr.DB_SYSTEM_NAME: "sqlite",
                    attr.DB_QUERY_TEXT: f"SELECT * FROM t WHERE id = {n}",
                }
            ),
        )
        for n in (1, 918273)
    )
    assert one.attributes[attr.QUERY_FINGERPRINT] == two.attributes[attr.QUERY_FINGERPRINT]


def test_sanitizing_off_keeps_the_text_but_still_adds_summary_and_fingerprint():
    text = "SELECT * FROM users WHERE id = 42"
    out = _run(
        QueryShapeEnricher(sanitize=False),
        _span(attributes={attr.DB_SYSTEM_NAME: "mysql", attr.DB_QUERY_TEXT: text}),
    )
    assert out.attributes[attr.DB_QUERY_TEXT] == text
    assert out.attributes[attr.DB_QUERY_SUMMARY] == "SELECT users"


def test_a_bytes_statement_is_sanitized_and_exported_as_text():
    # contrib's psycopg2 records cursor.execute(b"...") as a bytes attribute.
    raw = "SELECT * FROM users WHERE email = 'alice@example.com' AND note = '\u00e9t\u00e9'"
    span = _span(attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.DB_QUERY_TEXT: raw.encode()})
    out = _run(QueryShapeEnricher(), span)
    assert out.attributes[attr.DB_QUERY_TEXT] == "SELECT * FROM users WHERE email = ? AND note = ?"
    assert out.attributes[attr.DB_QUERY_SUMMARY] == "SELECT users"
    kept = _run(QueryShapeEnricher(sanitize=False), span)
    assert kept.attributes[attr.DB_QUERY_TEXT] == raw  # decoded, not dropped
    undecodable = _span(
        attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.DB_QUERY_TEXT: b"SELECT \xff"}
    )
    assert (
        _run(QueryShapeEnricher(sanitize=False), undecodable).attributes[attr.DB_QUERY_TEXT]
        == "SELECT \ufffd"
    )


def test_legacy_statement_attribute_is_sanitized_too():
    out = _run(
        QueryShapeEnricher(),
        _span(
            attributes={
                attr.LEGACY_DB_SYSTEM: "postgresql",
                attr.LEGACY_DB_STATEMENT: "DELETE FROM t WHERE x = 'hunter2'",
            }
        ),
    )
    assert out.attributes[attr.LEGACY_DB_STATEMENT] == "DELETE FROM t WHERE x = ?"


def test_non_database_and_transaction_spans_pass_untouched():
    internal = _span(kind=SpanKind.INTERNAL, attributes={attr.DB_QUERY_TEXT: "x = 'y'"})
    assert _run(QueryShapeEnricher(), internal) is internal
    transaction = _span(attributes={attr.DB_SYSTEM_NAME: "postgresql", attr.TRANSACTION_ID: "t1"})
    assert _run(QueryShapeEnricher(), transaction) is transaction


def test_redis_pipeline_follows_the_batch_naming_rule():
    assert redis_shape("GET ?\nGET ?").summary == "BATCH GET"
    assert redis_shape("GET ?\nSET ? ?").summary == "BATCH"
    assert redis_shape("GET ?").fingerprint == redis_shape("GET ?").fingerprint


def _error_span(message, exception_type="psycopg2.errors.UniqueViolation", attributes=None):
    stack = (
        "Traceback (most recent call last):\n"
        '  File "/app/views.py", line 12, in create_user\n'
        "    cursor.execute(\"INSERT INTO users VALUES ('alice@example.com')\")\n"
        "    ^^^^^^^^^^^^^^\n"
        f"{exception_type}: {message}\n"
    )
    event = Event(
        "exception",
        {
            "exception.type": exception_type,
            "exception.message": message,
            "exception.stacktrace": stack,
        },
    )
    return _span(
        attributes=attributes
        or {attr.DB_SYSTEM_NAME: "postgresql", attr.DB_QUERY_TEXT: "INSERT INTO users VALUES (%s)"},
        status=Status(StatusCode.ERROR, f"UniqueViolation: {message}"),
        events=(event,),
    )


UNIQUE = (
    'duplicate key value violates unique constraint "users_email_key"\n'
    "DETAIL:  Key (email)=(alice@example.com) already exists.\n"
)


def test_error_facts_from_a_contrib_exception_event():
    out = _run(DatabaseErrorEnricher(), _error_span(UNIQUE))
    assert out.attributes[attr.DB_RESPONSE_STATUS_CODE] == "23505"
    assert out.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert out.attributes[attr.ERROR_RETRYABLE] is False
    assert out.attributes[attr.ERROR_TYPE] == "psycopg2.errors.UniqueViolation"


def test_message_status_and_stacktrace_are_scrubbed_and_keep_their_meaning():
    out = _run(ErrorMessageScrubber(), _error_span(UNIQUE))
    event = out.events[0].attributes
    for field in (
        event["exception.message"],
        event["exception.stacktrace"],
        out.status.description,
    ):
        assert "alice@example.com" not in field
        assert "users_email_key" in field
    assert 'File "/app/views.py", line 12, in create_user' in event["exception.stacktrace"]


def test_sqlalchemy_error_on_an_application_span_is_scrubbed():
    message = (
        "(psycopg2.errors.UniqueViolation) "
        + UNIQUE
        + "\n[SQL: INSERT INTO users (email, n) VALUES "
        "(%(email)s, 918273)]\n[parameters: {'email': 'alice@example.com', 'n': 918273}]"
    )
    span = _error_span(
        message, "sqlalchemy.exc.IntegrityError", attributes={"http.route": "/users"}
    )
    out = _run(ErrorMessageScrubber(), span)
    text = str(out.events[0].attributes) + out.status.description
    assert "918273" not in text and "alice@example.com" not in text
    assert "[SQL: INSERT INTO users (email, n) VALUES (%(email)s, ?)]" in text


def test_unrelated_exceptions_on_application_spans_are_left_alone():
    span = _error_span("bad value 'x'", "ValueError", attributes={"http.route": "/"})
    assert _run(ErrorMessageScrubber(), span) is span


def test_scrubbed_stacktrace_keeps_frames_and_drops_chained_messages():
    stack = (
        "Traceback (most recent call last):\n"
        '  File "a.py", line 1, in f\n    x("hunter2")\n'
        "KeyError: 'hunter2'\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        '  File "a.py", line 3, in g\n    y()\n'
        "ValueError: hunter2\n"
    )
    out = scrub_stacktrace(stack, "ValueError", "?")
    assert "hunter2" not in out
    assert out.count('File "a.py"') == 2 and out.endswith("ValueError: ?")


def test_contrib_parameter_string_becomes_redacted_parameter_attributes():
    raw = "{'email': 'alice@example.com', 'password': 'hunter2', 'n': 918273}"
    span = _span(attributes={attr.DB_SYSTEM_NAME: "postgresql", CONTRIB_PARAMETERS_ATTRIBUTE: raw})
    captured = _run(ContribParameterEnricher(capture=True), span).attributes
    assert CONTRIB_PARAMETERS_ATTRIBUTE not in captured
    assert captured["db.query.parameter.email"] == "alice@example.com"
    assert captured["db.query.parameter.password"] == "[REDACTED]"
    assert captured["db.query.parameter.n"] == "918273"
    dropped = _run(ContribParameterEnricher(capture=False), span).attributes
    assert not any(
        key.startswith(("db.query.parameter", "db.statement.parameters")) for key in dropped
    )
