"""Replace every literal in a SQL statement with ``?``.

See docs/sql-analysis.md for the full rules. In short: string, number, boolean,
hex/binary and dollar-quoted literals become ``?``; comments are removed;
whitespace becomes single spaces; identifiers, keywords and placeholders stay;
``IN (?, ?, ?)`` becomes ``IN (?)`` and repeated literal-only ``VALUES`` rows are
folded into the first one. Anything unterminated is hidden to the end of input.
The lexical rules are the dialect's (:mod:`otel_db.sql.dialects`), chosen from the
span's ``db.system.name``; an unknown system gets the union of every dialect's.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from otel_db.sql.dialects import Dialect, dialect_for_system
from otel_db.sql.tokenizer import (
    LITERAL_KINDS,
    LITERAL_RUN,
    MAX_LEX_CHARS,
    NUMBER,
    OPERATOR,
    PLACEHOLDER,
    PLACEHOLDER_RUN,
    ROW_RUN,
    RUN_KINDS,
    WORD,
    Token,
    tokenize,
)

_logger = logging.getLogger(__name__)

#: Characters of a statement that are read; whatever lies beyond is one ``?``.
MAX_STATEMENT_CHARS: Final = MAX_LEX_CHARS
#: Longest sanitized text; a longer one is cut (it holds no literal anywhere).
MAX_SANITIZED_CHARS: Final = 64 * 1024

#: What :func:`sanitize` returns if something unexpected goes wrong.
FALLBACK_TEXT: Final = "?"

# Kind given to a token that replaced a literal (and to a rendered literal run).
HIDDEN: Final = "hidden"
HIDDEN_RUN: Final = "hidden_run"
_HIDDEN_TOKEN_TEXT: Final = "?"

_BOOLEAN_WORDS: Final = frozenset({"TRUE", "FALSE"})
# Tokens that may sit between the items of a literal-only list without making it
# anything else than a list of literals.
_LIST_NEUTRAL: Final = frozenset({",", "-", "+", "NULL", "DEFAULT"})

# After these, "-5" is a negative number rather than a subtraction.
_UNARY_CONTEXT_WORDS: Final = frozenset(
    {
        "SELECT", "WHERE", "AND", "OR", "NOT", "ON", "BY", "THEN", "ELSE", "WHEN", "CASE",
        "VALUES", "IN", "SET", "LIMIT", "OFFSET", "BETWEEN", "IS", "LIKE", "ILIKE", "RETURN",
        "HAVING", "DEFAULT", "INTERVAL", "ANY", "ALL", "SOME", "EXISTS", "AS",
    }
)  # fmt: skip

# Kinds of parenthesised groups.
_GROUP_IN: Final = 1
_GROUP_VALUES: Final = 2
_GROUP_OTHER: Final = 0


# What normalize_tokens hides; HIDDEN is included so that normalizing its own
# output again (to also hide placeholders) gives the same result as one pass.
_HIDE: Final = LITERAL_KINDS | {HIDDEN, HIDDEN_RUN}
_HIDE_WITH_PLACEHOLDERS: Final = _HIDE | {PLACEHOLDER, PLACEHOLDER_RUN}

# Rendering a run token: every literal item becomes "?", placeholders stay.
_RUN_LITERAL: Final = re.compile(
    r",\s*(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|'[^'\\]*'|(?i:NULL|TRUE|FALSE))"
    r"(?=\s*(?:,|\)|\Z))"
)
_RUN_SEPARATOR: Final = re.compile(r"\s*,\s*")
_ROW_ITEM: Final = re.compile(
    r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|'[^'\\]*'|(?i:NULL|TRUE|FALSE)"
)


def _run_items(text: str) -> int:
    """Items of a literal run (", 1, 'a,b', 3"): commas outside strings."""
    return text.count(",") - sum(s.count(",") for s in re.findall(r"'[^']*'", text))


def _hidden_run(token: Token, hide_placeholders: bool) -> Token:
    """A run token as sanitized text: ", ?, ?" (placeholders kept unless hidden)."""
    kind, text, spaced, _upper = token
    if kind == ROW_RUN:
        rendered = _RUN_SEPARATOR.sub(", ", _ROW_ITEM.sub("?", text))
    elif kind == LITERAL_RUN or hide_placeholders:
        rendered = ", ?" * _run_items(text)
        kind = HIDDEN_RUN
    else:
        rendered = _RUN_SEPARATOR.sub(", ", _RUN_LITERAL.sub(", ?", text))
    return tuple.__new__(Token, (kind if kind != LITERAL_RUN else HIDDEN_RUN, rendered, spaced, ""))


class _Group:
    __slots__ = ("has_literal", "kind", "open_index", "pure")

    def __init__(self, open_index: int, kind: int) -> None:
        self.open_index = open_index
        self.kind = kind
        self.pure = True
        self.has_literal = False


def _is_unary_sign(out: list[Token]) -> bool:
    if not out or out[-1].kind != OPERATOR or out[-1].text not in ("-", "+"):
        return False
    if len(out) == 1:
        return True
    before = out[-2]
    if before.kind == OPERATOR:
        return before.text != ")"
    return before.upper in _UNARY_CONTEXT_WORDS


def normalize_tokens(tokens: list[Token], *, hide_placeholders: bool = False) -> list[Token]:
    """Return ``tokens`` with literals hidden and literal lists collapsed.

    With ``hide_placeholders`` (used for fingerprints) placeholders count as
    literals too, so ``IN (%s, %s)`` and ``IN (%s)`` normalise alike.
    """
    out: list[Token] = []
    stack: list[_Group] = []
    values_anchor = -1  # index in ``out`` of the ")" that ended the last VALUES row
    hidden_kinds = _HIDE_WITH_PLACEHOLDERS if hide_placeholders else _HIDE

    new = tuple.__new__
    hidden_token = new(Token, (HIDDEN, _HIDDEN_TOKEN_TEXT, False, ""))
    hidden_spaced = new(Token, (HIDDEN, _HIDDEN_TOKEN_TEXT, True, ""))
    append = out.append
    neutral = _LIST_NEUTRAL
    for token in tokens:
        kind, text, spaced, upper = token

        # The common cases first: plain words and punctuation.
        if kind == WORD and upper not in _BOOLEAN_WORDS:
            if stack and upper not in neutral:
                stack[-1].pure = False
            append(token)
            continue
        if kind == OPERATOR and text != "(" and text != ")":
            if stack and text not in neutral:
                stack[-1].pure = False
            append(token)
            continue

        group = stack[-1] if stack else None
        if text == "(" and kind == OPERATOR:
            if group is not None:
                group.pure = False
            prev = out[-1] if out else None
            new_kind = _GROUP_OTHER
            if prev is not None:
                if prev.upper == "IN":
                    new_kind = _GROUP_IN
                elif prev.upper == "VALUES" or (
                    prev.text == "," and len(out) - 2 == values_anchor >= 0
                ):
                    new_kind = _GROUP_VALUES  # a first row, or a further one
            stack.append(_Group(len(out), new_kind))
            append(token)
            continue

        if text == ")" and kind == OPERATOR:
            if group is None:
                append(token)
                continue
            stack.pop()
            start = group.open_index
            collapsible = group.pure and group.has_literal
            if collapsible and group.kind == _GROUP_IN:
                del out[start + 1 :]
                append(hidden_token)
            elif (
                collapsible
                and group.kind == _GROUP_VALUES
                and start >= 2
                and out[start - 1].text == ","
                and start - 2 == values_anchor
            ):
                del out[start - 1 :]  # a further row of literals: fold into the first
                continue
            append(token)
            if group.kind == _GROUP_VALUES:
                values_anchor = len(out) - 1
            continue

        if kind in RUN_KINDS or kind == HIDDEN_RUN:
            if kind == ROW_RUN and group is None and len(out) - 1 == values_anchor >= 0:
                continue  # further rows of literals after a VALUES row: folded
            if kind != HIDDEN_RUN:
                token = _hidden_run(token, hide_placeholders)
            if group is not None:
                if token.kind == PLACEHOLDER_RUN:
                    group.pure = False  # placeholders kept
                else:
                    group.has_literal = True
            append(token)
            continue

        if kind in hidden_kinds or kind == WORD:  # WORD: TRUE / FALSE
            if kind == NUMBER and not spaced and _is_unary_sign(out):
                spaced = out.pop().spaced  # "-5" is one literal
            token = hidden_spaced if spaced else hidden_token
            if group is not None:
                group.has_literal = True
        elif group is not None:
            group.pure = False  # a placeholder (when kept) or an identifier
        append(token)
    return out


def render(tokens: list[Token]) -> str:
    """Rebuild text, with a single space wherever the original had any gap."""
    text = "".join([" " + token.text if token.spaced else token.text for token in tokens])
    return text[1:] if text.startswith(" ") else text


def render_sanitized(normalized: list[Token]) -> str:
    """The text of :func:`normalize_tokens`' output, at most MAX_SANITIZED_CHARS long.

    A longer one (thousands of placeholders in an ``IN`` list) is rendered with
    placeholders hidden too, so its lists collapse to ``(?)``, and cut if still long.
    """
    text = render(normalized)
    if len(text) <= MAX_SANITIZED_CHARS:
        return text
    text = render(normalize_tokens(normalized, hide_placeholders=True))
    return text[:MAX_SANITIZED_CHARS]


def sanitize(text: str, system: str | Dialect | None = None) -> str:
    """Return ``text`` with every literal replaced by ``?``; never raises.

    ``system`` is the span's ``db.system.name`` (or a :class:`Dialect`); without
    it, the union of every dialect's rules applies.
    """
    try:
        dialect = system if isinstance(system, Dialect) else dialect_for_system(system)
        return render_sanitized(normalize_tokens(tokenize(text, dialect)))
    except Exception:  # never let analysis break the application
        _logger.debug("otel_db: could not sanitize a statement", exc_info=True)
        return FALLBACK_TEXT
