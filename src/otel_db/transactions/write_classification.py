"""Whether a statement can write: what separates ``released`` from ``rolled_back``.

A transaction that ended without COMMIT lost nothing when none of its statements could
have changed anything. The classification is conservative: a statement is read-only only
when it is one of the shapes known to read (``SELECT``/``WITH``/``VALUES``/``SHOW``/
``EXPLAIN`` without ``ANALYZE``/``DESCRIBE``, and transaction control), with no locking
clause (``FOR UPDATE``/``FOR SHARE``), no writing CTE, no ``SELECT ... INTO``, no second
statement, and no call to a function outside a short list of built-ins known not to
write. Anything else (an unknown keyword, a procedure call, ``nextval()``, a statement
the instrumentation could not see) counts as a write.

Statements repeat verbatim (SQLAlchemy hands over the same compiled string each time):
answers are remembered per text, bounded.
"""

from __future__ import annotations

from typing import Final

from otel_db.sql.tokenizer import DOUBLE_QUOTED, OPERATOR, QUOTED_IDENT, STRING, WORD, tokenize

_MAYBE_QUOTED_NAME: Final = frozenset({QUOTED_IDENT, DOUBLE_QUOTED, STRING})
#: Statement kinds that read, given no clause below makes them write.
_READING: Final = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "DESCRIBE", "DESC"})
#: Transaction control: the scope markers themselves, never a write.
_CONTROL: Final = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "ABORT"}
)
#: Words that, anywhere in a reading statement, make it (possibly) write or lock.
_WRITING_WORDS: Final = frozenset(
    {
        "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "INTO", "SHARE",
        "CREATE", "DROP", "ALTER", "TRUNCATE", "CALL", "COPY", "LOCK", "GRANT", "REVOKE",
        "ANALYZE", "ANALYSE",
    }
)  # fmt: skip
#: Words followed by ``(`` that are syntax, not a function call.
_SYNTAX_BEFORE_PARENTHESIS: Final = frozenset(
    {
        "AS", "IN", "EXISTS", "ANY", "ALL", "SOME", "VALUES", "ON", "USING", "FROM", "JOIN",
        "WHERE", "AND", "OR", "NOT", "OVER", "FILTER", "WITHIN", "SELECT", "WITH", "CAST",
        "LATERAL", "BY", "HAVING", "THEN", "ELSE", "WHEN", "CASE", "UNION", "INTERSECT",
        "EXCEPT", "IS", "LIKE", "ILIKE", "BETWEEN", "ARRAY", "ROW", "RECURSIVE", "EXPLAIN",
        "LIMIT", "OFFSET", "DISTINCT", "TABLE", "SET", "EXTRACT", "INTERVAL", "TRIM",
        "POSITION", "SUBSTRING", "OVERLAY", "COLLATE", "ESCAPE", "MATERIALIZED",
    }
)  # fmt: skip
#: Built-in functions that do not write (PostgreSQL, MySQL/MariaDB, SQLite).
_READ_ONLY_FUNCTIONS: Final = frozenset(
    {
        "COUNT", "SUM", "MIN", "MAX", "AVG", "COALESCE", "NULLIF", "GREATEST", "LEAST",
        "LOWER", "UPPER", "LENGTH", "CHAR_LENGTH", "OCTET_LENGTH", "CONCAT", "CONCAT_WS",
        "SUBSTR", "REPLACE", "LTRIM", "RTRIM", "BTRIM", "LPAD", "RPAD", "LEFT", "RIGHT",
        "ABS", "ROUND", "CEIL", "CEILING", "FLOOR", "MOD", "POWER", "SQRT", "SIGN", "RANDOM",
        "NOW", "CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME", "DATE_TRUNC",
        "DATE_PART", "DATE", "TIME", "DATETIME", "JULIANDAY", "STRFTIME", "TO_CHAR",
        "TO_DATE", "TO_TIMESTAMP", "TO_NUMBER", "AGE", "IFNULL", "IIF", "IF", "ISNULL",
        "ARRAY_AGG", "STRING_AGG", "GROUP_CONCAT", "JSON_AGG", "JSONB_AGG",
        "JSON_OBJECT_AGG", "JSONB_OBJECT_AGG", "JSON_BUILD_OBJECT", "JSONB_BUILD_OBJECT",
        "JSON_BUILD_ARRAY", "JSONB_BUILD_ARRAY", "JSON_EXTRACT", "JSON_OBJECT",
        "JSON_ARRAY", "BOOL_AND", "BOOL_OR", "EVERY", "ROW_NUMBER", "RANK", "DENSE_RANK",
        "LAG", "LEAD", "FIRST_VALUE", "LAST_VALUE", "NTILE", "PERCENT_RANK", "CUME_DIST",
        "GENERATE_SERIES", "UNNEST", "ARRAY_LENGTH", "CARDINALITY", "ANY_VALUE",
        "VERSION", "CURRENT_SCHEMA", "CURRENT_SCHEMAS", "CURRENT_DATABASE",
        "CURRENT_SETTING", "CURRENT_USER", "SESSION_USER", "DATABASE", "SCHEMA", "USER",
        "PG_BACKEND_PID", "PG_SLEEP", "SLEEP", "HAS_TABLE_PRIVILEGE", "FORMAT", "MD5", "HEX",
        "TYPEOF",
        "INSTR", "STRPOS", "SPLIT_PART", "REGEXP_REPLACE", "REGEXP_MATCHES", "NORMALIZE",
    }
)  # fmt: skip

MAX_REMEMBERED: Final = 4096
_remembered: dict[str, bool] = {}


def can_write(statement: object) -> bool:
    """Whether ``statement`` (SQL text) may change anything; ``True`` when unsure."""
    if type(statement) is not str:
        if isinstance(statement, bytes):
            statement = statement.decode("utf-8", "replace")
        else:
            return True  # not seen (a callproc, a composed object): assume it writes
    found = _remembered.get(statement)  # type: ignore[arg-type]
    if found is None:
        try:
            found = _classify(statement)  # type: ignore[arg-type]
        except Exception:
            found = True
        if len(_remembered) >= MAX_REMEMBERED:
            _remembered.clear()  # a workload of ever-new texts gains nothing from memory
        _remembered[statement] = found  # type: ignore[index]
    return found


def _classify(statement: str) -> bool:
    tokens = tokenize(statement)
    # Leading parentheses: "(SELECT ...) UNION (SELECT ...)".
    start = 0
    while start < len(tokens) and tokens[start].text == "(":
        start += 1
    if start >= len(tokens):
        return True  # nothing recognisable
    first = tokens[start]
    if first.kind != WORD:
        return True
    keyword = first.upper
    if keyword in _CONTROL:
        return _more_than_one_statement(tokens)
    if keyword == "EXPLAIN":
        # EXPLAIN ANALYZE runs the statement; a plain EXPLAIN does not.
        return any(t.kind == WORD and t.upper in ("ANALYZE", "ANALYSE") for t in tokens)
    if keyword not in _READING:
        return True
    for index in range(start + 1, len(tokens)):
        token = tokens[index]
        if token.kind == WORD:
            upper = token.upper
            if upper in _WRITING_WORDS:
                return True
            if upper == "FOR" and keyword != "SHOW":
                return True  # FOR UPDATE / FOR SHARE / FOR NO KEY UPDATE: takes locks
            nxt = tokens[index + 1] if index + 1 < len(tokens) else None
            if (
                nxt is not None
                and nxt.text == "("
                and upper not in _SYNTAX_BEFORE_PARENTHESIS
                and not _is_read_only_function(tokens, index)
            ):
                return True  # a function that may write (nextval, a user's function)
        elif token.kind in _MAYBE_QUOTED_NAME:
            # The lexer hides a "..." it cannot tell from a string: as a function name
            # it is unknown all the same.
            nxt = tokens[index + 1] if index + 1 < len(tokens) else None
            if nxt is not None and nxt.text == "(" and not _is_column_list(tokens, index):
                return True  # a quoted function name: unknown
        elif token.kind == OPERATOR and token.text == ";" and index + 1 < len(tokens):
            return True  # a second statement: not looked into
    return False


def _is_read_only_function(tokens: list, index: int) -> bool:
    """``tokens[index]`` names a known built-in (optionally ``pg_catalog.``-qualified),
    or is a CTE name / alias followed by its column list."""
    upper = tokens[index].upper
    if upper in _READ_ONLY_FUNCTIONS:
        previous = tokens[index - 1] if index > 0 else None
        if previous is None or previous.text != ".":
            return True
        schema = tokens[index - 2] if index > 1 else None
        return schema is not None and schema.upper in ("PG_CATALOG", "INFORMATION_SCHEMA")
    return _is_column_list(tokens, index)


def _is_column_list(tokens: list, index: int) -> bool:
    """``name (a, b) AS (...)`` in a WITH clause, or ``alias (a, b)`` after AS: not a call."""
    previous = tokens[index - 1] if index > 0 else None
    if previous is not None and previous.kind == WORD and previous.upper in ("AS", "WITH"):
        return previous.upper == "AS" or _followed_by_as(tokens, index + 1)
    # The second CTE of a WITH.
    return previous is not None and previous.text == "," and _followed_by_as(tokens, index + 1)


def _followed_by_as(tokens: list, open_index: int) -> bool:
    """Whether the parenthesis at ``open_index`` closes and ``AS`` follows."""
    depth = 0
    for index in range(open_index, min(len(tokens), open_index + 512)):
        text = tokens[index].text
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth == 0:
                after = tokens[index + 1] if index + 1 < len(tokens) else None
                return after is not None and after.upper == "AS"
    return False


def _more_than_one_statement(tokens: list) -> bool:
    for index, token in enumerate(tokens):
        if token.kind == OPERATOR and token.text == ";" and index + 1 < len(tokens):
            return True
    return False
