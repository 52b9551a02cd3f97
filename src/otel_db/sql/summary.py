"""``db.operation.name``, ``db.query.summary`` and ``db.collection.name`` from tokens.

Follows the semantic conventions' "Generating a summary of the query text": the
summary lists operations and their targets in the order they appear,
``{operation1} {target1} {operation2} {target2} ...``, e.g. ``SELECT users orders``
or ``INSERT shipping_details SELECT orders``. Targets are written as the
application wrote them (quotes and schema prefix kept); operation keywords are
upper-cased. The summary is cut to 255 characters at a token boundary.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from otel_db.sql.tokenizer import OPERATOR, QUOTED_IDENT, WORD, Token

MAX_SUMMARY_CHARS: Final = 255

# Keywords that start a statement and become ``db.operation.name``.
_STATEMENT_KEYWORDS: Final = frozenset(
    {
        "ALTER", "ANALYZE", "BEGIN", "CALL", "CHECKPOINT", "CLOSE", "CLUSTER", "COMMENT",
        "COMMIT", "COPY", "CREATE", "DEALLOCATE", "DECLARE", "DELETE", "DESCRIBE", "DISCARD",
        "DO", "DROP", "END", "EXEC", "EXECUTE", "EXPLAIN", "FETCH", "FLUSH", "GRANT",
        "INSERT", "LISTEN", "LOAD", "LOCK", "MERGE", "MOVE", "NOTIFY", "OPTIMIZE", "PRAGMA",
        "PREPARE", "REFRESH", "REINDEX", "RELEASE", "RENAME", "REPLACE", "RESET", "REVOKE",
        "ROLLBACK", "SAVEPOINT", "SELECT", "SET", "SHOW", "START", "TRUNCATE", "UNLISTEN",
        "UPDATE", "UPSERT", "USE", "VACUUM", "VALUES", "WITH",
    }
)  # fmt: skip
# Operations that can appear inside another statement (sub-queries, CTE bodies).
_NESTED_OPERATIONS: Final = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"})
# Words after which a nested INSERT/UPDATE/DELETE keyword is not an operation:
# ON CONFLICT ... DO UPDATE, ON DUPLICATE KEY UPDATE, FOR UPDATE, MERGE ... THEN UPDATE.
_DDL_OBJECTS: Final = frozenset(
    {
        "TABLE", "INDEX", "VIEW", "SEQUENCE", "SCHEMA", "DATABASE", "TRIGGER", "FUNCTION",
        "PROCEDURE", "TYPE", "EXTENSION", "ROLE", "USER", "DOMAIN",
    }
)  # fmt: skip
_DDL_MODIFIERS: Final = frozenset(
    {"OR", "REPLACE", "TEMP", "TEMPORARY", "UNLOGGED", "UNIQUE", "GLOBAL", "LOCAL", "MATERIALIZED"}
)
_DDL_SKIP: Final = frozenset({"IF", "NOT", "EXISTS", "CONCURRENTLY", "ONLY"})
_INSERT_SKIP: Final = frozenset(
    {"INTO", "IGNORE", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "OR", "REPLACE", "ROLLBACK",
     "ABORT", "FAIL", "ONLY"}
)  # fmt: skip
_TABLE_PREFIX_SKIP: Final = frozenset({"ONLY", "LATERAL"})
# Words that can never be a table name or an alias.
_RESERVED: Final = frozenset(
    {
        "ALL", "AND", "AS", "ASC", "BETWEEN", "BY", "CASE", "CROSS", "DESC", "DISTINCT",
        "ELSE", "END", "EXCEPT", "EXISTS", "FETCH", "FOR", "FROM", "FULL", "GROUP", "HAVING",
        "IN", "INNER", "INTERSECT", "INTO", "IS", "JOIN", "LEFT", "LIMIT", "NATURAL", "NOT",
        "NULL", "OFFSET", "ON", "OR", "ORDER", "OUTER", "RETURNING", "RIGHT", "SET",
        "STRAIGHT_JOIN", "THEN", "UNION", "USING", "VALUES", "WHEN", "WHERE", "WINDOW", "WITH",
        "LATERAL", "ONLY", "QUALIFY", "USE", "FORCE", "IGNORE", "PARTITION",
        "TABLESAMPLE", "DO", "CONFLICT",
    }
    | _NESTED_OPERATIONS
)  # fmt: skip


_TABLE_INTRODUCERS: Final = frozenset({"FROM", "JOIN", "USING", "STRAIGHT_JOIN"})
_CTE_INTRODUCERS: Final = frozenset({"WITH", "RECURSIVE"})
_STATEMENT_PREFIXES: Final = frozenset({"EXPLAIN", "ANALYZE"})
# Words after which a statement keyword (INSERT, UPDATE, ...) starts a statement.
_STATEMENT_MAY_FOLLOW: Final = frozenset(
    {"EXPLAIN", "ANALYZE", "VERBOSE", "UNION", "ALL", "EXCEPT", "INTERSECT", "DISTINCT", "AS"}
)
# Words the main loop of operation_and_targets acts on; anything else is skipped fast.
_SUMMARY_WORDS: Final = _STATEMENT_KEYWORDS | _TABLE_INTRODUCERS | _STATEMENT_MAY_FOLLOW | {"WITH"}


class QueryShape(NamedTuple):
    operation: str | None
    summary: str | None
    collection: str | None


def _is_name(token: Token) -> bool:
    return token.kind == QUOTED_IDENT or (token.kind == WORD and token.upper not in _RESERVED)


def _read_name(
    tokens: list[Token], i: int, *, column_list_may_follow: bool = False
) -> tuple[str | None, int]:
    """Read a possibly dotted name at ``i``; return it and the index after it.

    A name followed by ``(`` is a function call (``FROM generate_series(...)``),
    unless a column list may follow (``INSERT INTO t (a, b)``).
    """
    n = len(tokens)
    if i >= n or not _is_name(tokens[i]):
        return None, i
    parts = [tokens[i].text]
    i += 1
    while i + 1 < n and tokens[i].text == "." and tokens[i + 1].kind in (WORD, QUOTED_IDENT):
        parts.append(tokens[i + 1].text)
        i += 2
    if i < n and tokens[i].text == "(" and not column_list_may_follow:
        return None, i  # a function call, e.g. FROM generate_series(...)
    return ".".join(parts), i


def _skip_alias(tokens: list[Token], i: int) -> int:
    n = len(tokens)
    if i < n and tokens[i].upper == "AS":
        i += 1
    if i < n and _is_name(tokens[i]) and not (i + 1 < n and tokens[i + 1].text == "."):
        i += 1
    return i


class _Collector:
    __slots__ = ("ctes", "parts", "targets_of_current")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.targets_of_current: list[str] = []
        self.ctes: set[str] = set()

    def operation(self, name: str) -> None:
        self.parts.append(name)
        self.targets_of_current = []

    def target(self, name: str) -> None:
        if name in self.ctes or name in self.targets_of_current:
            return
        self.targets_of_current.append(name)
        self.parts.append(name)


def _upper(token: Token) -> str:
    return token.upper


def operation_and_targets(tokens: list[Token]) -> QueryShape:
    """Operation name, query summary and single collection of a tokenized statement."""
    if not tokens:
        return QueryShape(None, None, None)
    n = len(tokens)
    out = _Collector()
    all_targets: list[str] = []
    operation: str | None = None
    # Per parenthesis depth: whether a statement keyword occurred at that depth,
    # so FROM inside EXTRACT(YEAR FROM ts) is not read as a table list.
    active = [False]
    statement_start = True
    in_with_header = False
    i = 0
    while i < n:
        token = tokens[i]
        text = token.text
        if token.kind == OPERATOR:
            if text == "(":
                active.append(False)
                statement_start = True
            elif text == ")":
                if len(active) > 1:
                    active.pop()
                statement_start = len(active) == 1 and in_with_header
            elif text == ";":
                active = [False]
                statement_start = True
                in_with_header = False
            elif text == ",":
                statement_start = False
            else:
                statement_start = False
            i += 1
            continue
        upper = token.upper
        if upper not in _SUMMARY_WORDS:
            # A plain name or keyword. The only thing to learn: "name AS (" after
            # WITH/RECURSIVE/"," names a common table expression, not a table.
            if (
                i + 2 < n
                and tokens[i + 1].upper == "AS"
                and tokens[i + 2].text == "("
                and i > 0
                and (tokens[i - 1].text == "," or tokens[i - 1].upper in _CTE_INTRODUCERS)
            ):
                out.ctes.add(text)
                i += 2
            else:
                i += 1
            statement_start = False
            continue
        if upper == "WITH" and statement_start:
            in_with_header = len(active) == 1
            if operation is None and len(active) == 1:
                operation = "WITH"  # replaced by the main statement's keyword below
            i += 2 if i + 1 < n and _upper(tokens[i + 1]) == "RECURSIVE" else 1
            statement_start = False
            continue
        if upper in _STATEMENT_KEYWORDS and (statement_start or upper == "SELECT"):
            op, i = _statement(tokens, i, out, all_targets)
            if op is not None:
                active[-1] = True
                if len(active) == 1 and (operation is None or operation == "WITH"):
                    operation = op
                    in_with_header = False
            statement_start = op in _STATEMENT_PREFIXES
            continue
        if upper in _TABLE_INTRODUCERS and active[-1]:
            i = _table_list(tokens, i + 1, out, all_targets, allow_comma=upper == "FROM")
            statement_start = False
            continue
        statement_start = upper in _STATEMENT_MAY_FOLLOW
        i += 1

    if operation is None:
        return QueryShape(None, None, None)
    summary = _truncate(out.parts) if out.parts else operation
    distinct = set(all_targets) - out.ctes
    collection = next(iter(distinct)) if len(distinct) == 1 else None
    return QueryShape(operation, summary, collection)


def _statement(
    tokens: list[Token], i: int, out: _Collector, all_targets: list[str]
) -> tuple[str | None, int]:
    """Handle a statement keyword at ``i``; return (operation, next index)."""
    n = len(tokens)
    upper = tokens[i].upper
    nxt = _upper(tokens[i + 1]) if i + 1 < n else ""
    if upper == "REPLACE" and nxt != "INTO":
        return None, i + 1  # the REPLACE() function
    if upper in ("CREATE", "ALTER", "DROP"):
        j = i + 1
        while j < n and _upper(tokens[j]) in _DDL_MODIFIERS:
            j += 1
        obj = _upper(tokens[j]) if j < n else ""
        if obj not in _DDL_OBJECTS:
            out.operation(upper)
            return upper, i + 1
        op = f"{upper} {obj}"
        out.operation(op)
        j += 1
        while j < n and _upper(tokens[j]) in _DDL_SKIP:
            j += 1
        if obj == "INDEX":
            # CREATE INDEX [name] ON table: the target is the table.
            while j < n and _upper(tokens[j]) != "ON" and tokens[j].text not in ("(", ";"):
                j += 1
            j += 1
            while j < n and _upper(tokens[j]) in _DDL_SKIP:
                j += 1
        if obj in ("TABLE", "INDEX", "VIEW", "SEQUENCE"):
            name, j = _read_name(tokens, j, column_list_may_follow=True)
            if name is not None:
                out.target(name)
                all_targets.append(name)
        return op, j
    if upper == "START" and nxt == "TRANSACTION":
        out.operation("START TRANSACTION")
        return "START TRANSACTION", i + 2
    out.operation(upper)
    j = i + 1
    if upper in ("INSERT", "REPLACE", "MERGE", "UPSERT"):
        while j < n and _upper(tokens[j]) in _INSERT_SKIP:
            j += 1
        name, j = _read_name(tokens, j, column_list_may_follow=True)
        if name is not None:
            out.target(name)
            all_targets.append(name)
    elif upper == "UPDATE":
        while j < n and _upper(tokens[j]) in ("ONLY", "LOW_PRIORITY", "IGNORE", "OR", "ROLLBACK",
                                              "ABORT", "REPLACE", "FAIL"):  # fmt: skip
            j += 1
        j = _table_list(tokens, j, out, all_targets, allow_comma=True)
    elif upper in ("TRUNCATE", "LOCK", "VACUUM", "ANALYZE", "REINDEX", "CLUSTER", "REFRESH"):
        while j < n and _upper(tokens[j]) in ("TABLE", "ONLY", "MATERIALIZED", "VIEW"):
            j += 1
        name, j = _read_name(tokens, j)
        if name is not None:
            out.target(name)
            all_targets.append(name)
    return upper, j


def _table_list(
    tokens: list[Token], i: int, out: _Collector, all_targets: list[str], *, allow_comma: bool
) -> int:
    n = len(tokens)
    while i < n:
        while i < n and _upper(tokens[i]) in _TABLE_PREFIX_SKIP:
            i += 1
        name, i = _read_name(tokens, i)
        if name is None:
            return i
        out.target(name)
        all_targets.append(name)
        i = _skip_alias(tokens, i)
        if allow_comma and i < n and tokens[i].text == ",":
            i += 1
            continue
        return i
    return i


def _truncate(parts: list[str]) -> str:
    summary = " ".join(parts)
    if len(summary) <= MAX_SUMMARY_CHARS:
        return summary
    kept: list[str] = []
    length = -1
    for part in parts:
        if length + 1 + len(part) > MAX_SUMMARY_CHARS:
            break
        kept.append(part)
        length += 1 + len(part)
    return " ".join(kept) if kept else parts[0][:MAX_SUMMARY_CHARS]
