"""A single-pass SQL tokenizer.

One compiled regular expression, tried left to right, splits a statement into
tokens. Every alternative is written so that it matches in time linear in the
length of what it consumes and never backtracks across the input (the "unrolled
loop" form for quoted text, a mandatory end anchor for unterminated text), so the
whole pass is linear even on pathological input. The last alternative matches any
single character, so tokenizing cannot fail.

The tokenizer understands the lexical rules that matter for hiding literals in the
dialects otel_db meets (PostgreSQL, MySQL/MariaDB, SQLite):

* ``'...'`` strings with ``''`` and backslash escapes, optionally prefixed
  ``E``/``N``/``X``/``B``/``U&``. Backslash is always treated as an escape: on a
  PostgreSQL server with ``standard_conforming_strings`` this can only make a
  string look *longer* than it is, which hides more, never less.
* PostgreSQL dollar quoting (``$$...$$``, ``$tag$...$tag$``).
* ``"quoted"`` and ```backticked``` identifiers.
* numbers (integers, decimals, exponents) and ``0x``/``0b`` literals.
* placeholders: ``%s``, ``%(name)s``, ``:name``, ``:1``, ``$1``, ``?``.
* ``-- ...``, ``/* ... */`` and MySQL ``# ...`` comments (``#`` followed by ``>``
  or ``-`` is a PostgreSQL operator, not a comment).

Anything unterminated (a string, identifier or comment) runs to the end of input;
an unterminated quoted identifier is reported as a literal so that it is hidden.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

# Token kinds.
WORD: Final = "word"  # keyword or bare identifier
QUOTED_IDENT: Final = "ident"  # "quoted" or `backticked` identifier
STRING: Final = "string"  # any quoted literal
NUMBER: Final = "number"
PLACEHOLDER: Final = "placeholder"
OPERATOR: Final = "op"  # punctuation and operators, including ( ) , ; .

LITERAL_KINDS: Final = frozenset({STRING, NUMBER})


class Token(NamedTuple):
    kind: str
    text: str
    # Whether whitespace or a comment separated this token from the previous one.
    spaced: bool
    # ``text.upper()`` for words (keywords are case-insensitive), "" otherwise.
    upper: str = ""


# One match is one token: (leading whitespace, word, anything else, dollar tag).
# Words, the most frequent token, get their own group; every other token is told
# apart by its first character (see _kind_of), which is cheaper than a named group
# per kind. Each alternative either consumes what it matches without backtracking
# across the input, or runs to the end of input (\Z) when unterminated.
_PATTERN: Final = re.compile(
    r"""
    (\s*)
    (?:
      ((?!(?:[EeNnXxBb]|[Uu]&)')[^\W\d][\w$]*)
    | (
        ::|<=|>=|<>|!=|\|\||->>|->|[(),;=*]|\.(?!\d)
      | --[^\n]*|\#(?![>\-])[^\n]+|/\*.*?(?:\*/|\Z)
      | (?:[EeNnXxBb]|[Uu]&)?'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\\?\Z)
      | 0[xX][0-9A-Fa-f]+|0[bB][01]+
      | (?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?
      | \$((?:[^\W\d]\w*)?)\$.*?(?:\$\4\$|\Z)
      | "[^"]*(?:""[^"]*)*(?:"|\Z)|`[^`]*(?:``[^`]*)*(?:`|\Z)
      | %\([^)%\s]{0,128}\)s|%s|\$\d+|\?|:[^\W\d]\w*|:\d+
      | .
      )
    | \Z
    )
    """,
    re.VERBOSE | re.DOTALL,
)

_COMMENT: Final = "comment"
_FIRST_CHAR_KIND: Final = {
    "'": STRING,
    '"': QUOTED_IDENT,
    "`": QUOTED_IDENT,
    "?": PLACEHOLDER,
    **dict.fromkeys("0123456789", NUMBER),
    **dict.fromkeys("EeNnXxBbUu", STRING),  # E'..', N'..', X'..', B'..', U&'..'
}


def _kind_of(token: str) -> str:
    kind = _FIRST_CHAR_KIND.get(token[0])
    if kind is not None:
        return kind
    if token[0].isdigit():
        return NUMBER  # digits of other scripts
    if len(token) == 1:
        return OPERATOR
    first, second = token[0], token[1]
    if first == "-":
        return _COMMENT if second == "-" else OPERATOR
    if first == "/":
        return _COMMENT if second == "*" else OPERATOR
    if first == "#":
        return _COMMENT
    if first == ".":
        return NUMBER
    if first == "$":
        return PLACEHOLDER if second.isdigit() else STRING
    if first == "%":
        return PLACEHOLDER
    if first == ":":
        return OPERATOR if second == ":" else PLACEHOLDER
    return OPERATOR


def _closed(quoted: str) -> bool:
    """Whether a quoted identifier has its closing quote.

    Doubled quotes inside are escapes, so it is closed when it ends in an odd run
    of quote characters after the opening one.
    """
    quote = quoted[0]
    body = quoted[1:]
    run = len(body) - len(body.rstrip(quote))
    return run % 2 == 1


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; whitespace and comments are dropped.

    Each token records whether something (whitespace or a comment) separated it
    from the token before, so callers can rebuild readable text.
    """
    tokens: list[Token] = []
    append = tokens.append
    new = tuple.__new__  # Token(...) goes through a Python-level __new__: slower
    kind_of = _kind_of
    spaced = False
    for gap, word, other, _tag in _PATTERN.findall(text):
        if gap:
            spaced = True
        if word:
            append(new(Token, (WORD, word, spaced, word.upper())))
        elif other:
            kind = kind_of(other)
            if kind == _COMMENT:
                spaced = True
                continue
            append(new(Token, (kind, other, spaced, "")))
        else:
            break  # end of input
        spaced = False
    if tokens:
        first, last = tokens[0], tokens[-1]
        tokens[0] = new(Token, (first.kind, first.text, False, first.upper))
        if last.kind == QUOTED_IDENT and not _closed(last.text):
            # Only the last token can be unterminated; it may hide anything.
            tokens[-1] = new(Token, (STRING, last.text, last.spaced, ""))
    return tokens
