"""Replace every literal in a SQL statement with ``?``.

See docs/sql-analysis.md for the full rules. In short: string, number, boolean,
hex/binary and dollar-quoted literals become ``?``; comments are removed;
whitespace becomes single spaces; identifiers, keywords and placeholders stay;
``IN (?, ?, ?)`` becomes ``IN (?)`` and repeated literal-only ``VALUES`` rows are
folded into the first one. Anything unterminated is hidden to the end of input.
"""

from __future__ import annotations

import logging
from typing import Final

from otel_db.sql.tokenizer import (
    LITERAL_KINDS,
    NUMBER,
    OPERATOR,
    PLACEHOLDER,
    QUOTED_IDENT,
    WORD,
    Token,
    tokenize,
)

_logger = logging.getLogger(__name__)

#: Statements longer than this many characters are cut before analysis; whatever
#: was cut is simply absent from the sanitized text.
MAX_STATEMENT_CHARS: Final = 64 * 1024

#: What :func:`sanitize` returns if something unexpected goes wrong.
FALLBACK_TEXT: Final = "?"

# Kind given to a token that replaced a literal.
HIDDEN: Final = "hidden"
_HIDDEN_TOKEN_TEXT: Final = "?"

_BOOLEAN_WORDS: Final = frozenset({"TRUE", "FALSE"})
# Tokens that may sit between the items of a literal-only list without making it
# anything else than a list of literals.
_LIST_NEUTRAL: Final = frozenset({",", "-", "+", "NULL", "DEFAULT"})
_COMPARISONS: Final = frozenset({"=", "<>", "!=", "<", ">", "<=", ">="})
_PATTERN_WORDS: Final = frozenset({"LIKE", "ILIKE", "REGEXP", "RLIKE"})

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
_HIDE: Final = LITERAL_KINDS | {HIDDEN}
_HIDE_WITH_PLACEHOLDERS: Final = _HIDE | {PLACEHOLDER}


class _Group:
    __slots__ = ("has_literal", "kind", "open_index", "pure")

    def __init__(self, open_index: int, kind: int) -> None:
        self.open_index = open_index
        self.kind = kind
        self.pure = True
        self.has_literal = False


def _is_value_in_double_quotes(tokens: list[Token], index: int, out: list[Token], group) -> bool:
    """MySQL (without ANSI_QUOTES) reads ``"x"`` as a string: guess from context."""
    if index + 1 < len(tokens) and tokens[index + 1].text == ".":
        return False  # "schema"."table"
    if not out:
        return False
    prev = out[-1]
    if prev.kind == OPERATOR and prev.text in _COMPARISONS:
        return True
    if prev.upper in _PATTERN_WORDS:
        return True
    return (
        group is not None
        and group.kind != _GROUP_OTHER
        and prev.kind == OPERATOR
        and prev.text in ("(", ",")
    )


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
    for index, token in enumerate(tokens):
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

        if (
            kind in hidden_kinds
            or kind == WORD  # TRUE / FALSE
            or (
                kind == QUOTED_IDENT
                and text.startswith('"')
                and _is_value_in_double_quotes(tokens, index, out, group)
            )
        ):
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


def sanitize(text: str) -> str:
    """Return ``text`` with every literal replaced by ``?``; never raises."""
    try:
        return render(normalize_tokens(tokenize(text[:MAX_STATEMENT_CHARS])))
    except Exception:  # never let analysis break the application
        _logger.debug("otel_db: could not sanitize a statement", exc_info=True)
        return FALLBACK_TEXT
