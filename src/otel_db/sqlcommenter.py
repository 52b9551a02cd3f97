"""``OTEL_PYTHON_DB_SQLCOMMENTER``: a ``traceparent`` SQL comment on executed statements.

PostgreSQL logs, ``pg_stat_activity`` and MySQL's process list then show which trace
ran a statement: ``SELECT ... /*traceparent='00-<trace id>-<span id>-01'*/`` (the
sqlcommenter format). The comment names the statement's own span.

Only the executed text carries it: ``db.query.text`` is recorded before the rewrite.
Only queries and DML are commented (the first keyword, after comments and opening
parentheses, is one of :data:`COMMENTED_KEYWORDS`): the server keeps the text of DDL
(SQLite stores ``CREATE`` statements in ``sqlite_master``, and reflection parses them
back: a trailing comment there hides ``WITHOUT ROWID``/``STRICT``, partial indexes and
computed columns), and ``SET``, ``BEGIN``, ``COPY``, ``PRAGMA`` and the like name no
work a traceparent helps to find. Other statements are left alone because a
per-execution comment would break them:

- drivers that prepare statements server-side and cache them by text (asyncpg; psycopg
  3, which auto-prepares repeated statements): every execution would be a new text, a
  cache miss and one more prepared statement held by the server;
- ``executemany`` batches (the comment would be repeated or split by the driver);
- statements that end inside a ``--`` line comment, where the comment would be lost,
  and statements that already carry a sqlcommenter comment.

For SQLAlchemy, :func:`append_traceparent` is a ``StatementHooks`` rewriter. For raw
psycopg2, otel_db's cursor appends it inside contrib's statement span
(``instrumentation/psycopg2.py``; ``executemany``, ``callproc`` and ``bytes`` statements
are left alone). For the other contrib DB-API instrumentations (pymysql, mysqlclient)
the distro passes their own ``enable_commenter`` option, restricted to the
``traceparent`` key, through :func:`instrumentor_options`.
"""

from __future__ import annotations

import re
from typing import Any, Final

from opentelemetry.trace import Span

from otel_db.settings import Settings

#: SQLAlchemy drivers whose statements are prepared and cached by text server-side.
PREPARING_DRIVERS: Final = frozenset({"asyncpg", "psycopg", "psycopg_async"})

#: Contrib instrumentations (entry point names) that have their own sqlcommenter.
#: (psycopg2 is not one of them: otel_db's psycopg2 cursor comments more cheaply.)
CONTRIB_COMMENTER_INSTRUMENTATIONS: Final = frozenset({"pymysql", "mysqlclient"})

# contrib's commenter_options: keep only the traceparent (no driver versions, which
# would only make the comment longer and reveal versions in server logs).
_CONTRIB_COMMENTER_OPTIONS: Final = {
    "db_driver": False,
    "dbapi_threadsafety": False,
    "dbapi_level": False,
    "driver_paramstyle": False,
    "libpq_version": False,
    "mysql_client_version": False,
    "opentelemetry_values": True,
}


#: First keywords of the statements that get a comment: queries and DML.
COMMENTED_KEYWORDS: Final = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "REPLACE", "VALUES"}
)
# Leading whitespace, comments and opening parentheses, then the first keyword.
_FIRST_KEYWORD: Final = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z]+)", re.DOTALL)

#: ``-<flags>'*/`` for each trace-flags byte.
_COMMENT_ENDINGS: Final = tuple(f"-{flags:02x}'*/" for flags in range(256))
#: (trace id, comment up to the span id) of the last trace commented: the statements of
#: one trace share it, and formatting a 128-bit id is most of a comment's cost. Replaced
#: as one tuple, so threads never see one trace's id with another's text.
_last_trace: tuple[int, str] = (0, "")


def traceparent_comment(span: Span) -> str | None:
    """``/*traceparent='...'*/`` for ``span``, or None for an invalid span context."""
    global _last_trace
    context = span.get_span_context()
    if not context.is_valid:
        return None
    trace_id = context.trace_id
    last = _last_trace
    if last[0] != trace_id:
        last = _last_trace = (trace_id, f"/*traceparent='00-{trace_id:032x}-")
    return last[1] + format(context.span_id, "016x") + _COMMENT_ENDINGS[context.trace_flags & 0xFF]


def can_comment(statement: str) -> bool:
    """Whether ``statement`` is a query or DML to which a comment can be appended without
    changing its meaning."""
    first = _FIRST_KEYWORD.match(statement)
    if first is None or first.group(1).upper() not in COMMENTED_KEYWORDS:
        return False
    tail = statement.rstrip()
    if not tail or "traceparent=" in tail[-80:]:
        return False
    last_line = tail.rsplit("\n", 1)[-1]
    return "--" not in last_line


#: Per statement text: (text before the comment, text after it), or None when the
#: statement cannot take one. Applications repeat their statements, so the checks and
#: the split are made once per text (bounded; long texts are not kept).
MAX_REMEMBERED_STATEMENTS: Final = 1_024
MAX_REMEMBERED_CHARS: Final = 4_096
_placements: dict[str, tuple[str, str] | None] = {}


def _placement(statement: str) -> tuple[str, str] | None:
    found = _placements.get(statement, _placements)
    if found is not _placements:
        return found  # type: ignore[return-value]
    if not can_comment(statement):
        placement = None
    else:
        body = statement.rstrip()
        semicolon = body.endswith(";")  # the comment goes before it
        placement = (f"{body[:-1].rstrip() if semicolon else body} ", ";" if semicolon else "")
    if len(statement) <= MAX_REMEMBERED_CHARS:
        if len(_placements) >= MAX_REMEMBERED_STATEMENTS:
            _placements.clear()  # a workload past this many texts is not repeating
        _placements[statement] = placement
    return placement


def commented(statement: str, span: Span) -> str:
    """``statement`` with ``span``'s traceparent comment, when it can take one."""
    placement = _placement(statement)
    if placement is None:
        return statement
    comment = traceparent_comment(span)
    if comment is None:
        return statement
    return f"{placement[0]}{comment}{placement[1]}"


def append_traceparent(span: Span, connection: Any, statement: str, parameters: Any) -> str:
    """SQLAlchemy rewriter: the statement to execute, with the span's traceparent."""
    driver = getattr(getattr(connection, "dialect", None), "driver", None)
    if driver in PREPARING_DRIVERS:
        return statement
    if isinstance(parameters, list) and len(parameters) > 1:  # executemany
        return statement
    return commented(statement, span)


def instrumentor_options(entry_point_name: str, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for a contrib instrumentor's ``instrument()`` call."""
    if not settings.sqlcommenter or entry_point_name not in CONTRIB_COMMENTER_INSTRUMENTATIONS:
        return {}
    return {
        "enable_commenter": True,
        "commenter_options": dict(_CONTRIB_COMMENTER_OPTIONS),
        "enable_attribute_commenter": False,  # db.query.text stays without the comment
    }
