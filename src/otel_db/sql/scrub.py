"""Error messages without the values they quote, read by their structure.

A driver's message is read as the server builds it, not matched against a list of
known sentences:

* PostgreSQL parts start a line: ``DETAIL:``, ``HINT:``, ``CONTEXT:``, ``WHERE:``,
  ``QUERY:``, ``STATEMENT:``, ``LINE n:``. ``CONTEXT``/``WHERE`` keep their words up
  to the first value character and hide everything after it, to the end of the
  message (``JSON data, line 1: ?``). ``QUERY``/``STATEMENT`` are sanitized as
  statements; ``LINE 1:`` is the start of the statement and is sanitized, any other
  ``LINE n:`` (or one PostgreSQL cut to ``...``) may start inside a literal and is
  hidden; the caret line goes.
* Everywhere else (the primary message, ``DETAIL``, ``HINT``, MySQL/MariaDB and
  SQLite messages) a *value* is hidden: a quoted text, unless a word naming an
  object (``key``, ``constraint``, ``table``, ``column``, ...) comes right before
  it, and a parenthesised group after ``=`` or ``contains``. A value ends at the
  *last* closing character that can end it (the last ``)``; the last matching
  quote before the next object name), never the first: a value may hold quotes,
  parentheses and newlines (``Key (d)=(a)b\nc) already exists``). A value that
  does not end, or whose end lies past the start of another part, hides the rest
  of the message.
* SQLAlchemy's ``[SQL: ...]`` is sanitized, ``[parameters: ...]`` removed; when
  the driver's part could have produced either (it repeats them, or one of its
  values does not end), everything after it is hidden.
"""

from __future__ import annotations

import bisect
import re
from typing import Final

from otel_db.sql.dialects import Dialect
from otel_db.sql.sanitize import sanitize

HIDDEN: Final = "?"

_NAME_WORDS: Final = frozenset(
    {
        "key", "constraint", "table", "relation", "index", "database", "schema", "sequence",
        "function", "procedure", "type", "column", "role", "user", "operator", "trigger",
        "view", "extension", "collation", "domain", "savepoint", "cursor",
    }
)  # fmt: skip
_WORD_BEFORE: Final = re.compile(r"(\w+)\s*\Z")
# What opens a value or a name: a quote, "=(" / "= (" / "contains (".
_OPENER: Final = re.compile(r"""['"]|=\s*\(|\bcontains\s*\(""", re.IGNORECASE)
_NAME_QUOTE: Final = re.compile(r"""\b(\w+)\s*(['"])""")
_PART_HEADER: Final = re.compile(
    r"^(?:(?P<context>CONTEXT|WHERE):|(?P<sql>QUERY|STATEMENT):|LINE (?P<line>\d+):)",
    re.MULTILINE,
)
_CARET_LINE: Final = re.compile(r"\s*\^\s*(?:\n|\Z)")
_CONTEXT_KEEP: Final = re.compile(r"""[^:"'=(\n]*:?""")
# SQLite names what it did not find to the end of its message; written as a string
# ('x' where a table or a column goes) that name is a literal.
_SQLITE_NO_SUCH_COLUMN: Final = re.compile(
    r"(no such (?:column|table): ).+", re.IGNORECASE | re.DOTALL
)
_SA_PREFIX: Final = re.compile(r"\(\w+(?:\.\w+)*\) ")
_SA_SQL: Final = "\n[SQL: "
_SA_PARAMETERS: Final = "\n[parameters: "
_SA_BACKGROUND: Final = re.compile(r"\n\(Background on this error at: https?://[^\s()]+\)\s*\Z")
_MYSQL_TUPLE: Final = re.compile(r"""^\((\d+), (["'])(.*)\2\)$""", re.DOTALL)


def _is_name_quote(text: str, quote_at: int) -> bool:
    word = _WORD_BEFORE.search(text, max(0, quote_at - 40), quote_at)
    return word is not None and word.group(1).lower() in _NAME_WORDS


def _scrub_driver_message(text: str, dialect: Dialect | None) -> tuple[str, bool]:
    """A driver's message scrubbed; and whether it ended hiding (a value ran on)."""
    text = _SQLITE_NO_SUCH_COLUMN.sub(r"\1?", text)
    name_starts = [
        m.start(2) for m in _NAME_QUOTE.finditer(text) if m.group(1).lower() in _NAME_WORDS
    ]
    headers = list(_PART_HEADER.finditer(text))
    header_starts = [header.start() for header in headers]
    out: list[str] = []
    position = 0
    length = len(text)
    while position < length:
        match = _OPENER.search(text, position)
        following = bisect.bisect_left(header_starts, position)
        header = headers[following] if following < len(headers) else None
        if header is not None and (match is None or header.start() <= match.start()):
            out.append(text[position : header.start()])
            position, ran_on = _scrub_part(text, header, dialect, out)
            if ran_on:
                return "".join(out), True
            continue
        if match is None:
            break
        opener = match.group()
        start = match.start()
        out.append(text[position:start])
        if opener in ("'", '"'):
            if _is_name_quote(text, start):
                close = text.find(opener, start + 1)
                if close < 0:
                    out.append(HIDDEN)
                    return "".join(out), True
                out.append(text[start : close + 1])
                position = close + 1
                continue
            # The value ends at the last such quote before the last object name.
            limit = name_starts[-1] if name_starts and name_starts[-1] > start else length
            close = text.rfind(opener, start + 1, limit)
        else:
            out.append("=" if opener[0] == "=" else opener[:-1])
            close = text.rfind(")", match.end())
        crossed = bisect.bisect_right(header_starts, close) > bisect.bisect_right(
            header_starts, start
        )
        if close < 0 or crossed:
            # Unterminated, or across a part: what follows may be part of a value.
            out.append(HIDDEN)
            return "".join(out), True
        out.append(HIDDEN if opener in ("'", '"') else "(" + HIDDEN + ")")
        position = close + 1
    out.append(text[position:])
    return "".join(out), False


def _scrub_part(
    text: str, header: re.Match[str], dialect: Dialect | None, out: list[str]
) -> tuple[int, bool]:
    """Append a PostgreSQL CONTEXT/QUERY/LINE part; return where the rest starts
    and whether everything after it is hidden."""
    end_of_line = text.find("\n", header.end())
    end_of_line = len(text) if end_of_line < 0 else end_of_line
    body = text[header.end() : end_of_line].strip()
    if header.group("context"):
        kept = _CONTEXT_KEEP.match(body).group()  # type: ignore[union-attr]
        hidden = bool(body[len(kept) :] or text[end_of_line:].strip())
        out.append(f"{header.group()}  {kept.strip()}" + (f" {HIDDEN}" if hidden else ""))
        return len(text), hidden
    if header.group("sql"):
        out.append(f"{header.group()}  {sanitize(body, dialect)}")
        return end_of_line, False
    if header.group("line") == "1" and not body.startswith("..."):
        body = sanitize(body, dialect)
    elif body:
        body = HIDDEN
    out.append(f"{header.group()} {body}")
    caret = _CARET_LINE.match(text, end_of_line + 1) if end_of_line < len(text) else None
    if caret is None:
        return end_of_line, False
    return caret.end() - (1 if caret.group().endswith("\n") else 0), False


def _scrub_sqlalchemy(text: str, dialect: Dialect | None) -> str:
    """SQLAlchemy's message: ``(driver.Error) <driver message>`` and its tail."""
    background = _SA_BACKGROUND.search(text)
    tail = background.group() if background else ""
    body = text[: background.start()] if background else text
    sql_at = body.find(_SA_SQL)
    parameters_at = body.rfind(_SA_PARAMETERS)  # a repr holds no raw newline
    driver_end = min(at for at in (sql_at, parameters_at, len(body)) if at >= 0)
    driver, ran_on = _scrub_driver_message(body[:driver_end], dialect)
    parts = [driver]
    if ran_on or body.count(_SA_SQL) > 1:
        if driver_end < len(body):
            parts.append("\n[SQL: ?]" if sql_at >= 0 else "")
            parts.append("\n[parameters: ?]" if parameters_at >= 0 else "")
        return "".join(parts) + tail
    if sql_at >= 0:
        sql_end = parameters_at if parameters_at > sql_at else len(body)
        statement = body[sql_at + len(_SA_SQL) : sql_end].rstrip()
        statement = statement.removesuffix("]")
        parts.append(f"{_SA_SQL}{sanitize(statement, dialect)}]")
    if parameters_at >= 0:
        parts.append("\n[parameters: ?]")
    return "".join(parts) + tail


def scrub(text: str, dialect: Dialect | None) -> str:
    tuple_match = _MYSQL_TUPLE.match(text)
    if tuple_match:  # pymysql: (1062, "Duplicate entry 'x' for key 'users.email'")
        errno, quote, inner = tuple_match.groups()
        return f"({errno}, {quote}{scrub(inner, dialect)}{quote})"
    prefix = _SA_PREFIX.match(text)
    if prefix or _SA_SQL in text or _SA_PARAMETERS in text:
        start = prefix.end() if prefix else 0
        return text[:start] + _scrub_sqlalchemy(text[start:], dialect)
    return _scrub_driver_message(text, dialect)[0]
