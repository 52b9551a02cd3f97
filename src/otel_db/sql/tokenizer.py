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


# Leading whitespace is absorbed into each match (group "gap") so that one match is
# one token; the most frequent kinds (words, punctuation) are tried first.
_PATTERN: Final = re.compile(
    r"""
    (?P<gap>\s*)
    (?:
      (?P<word>(?!(?:[EeNnXxBb]|[Uu]&)')[^\W\d][\w$]*)
    | (?P<op>::|<=|>=|<>|!=|\|\||->>|->|[(),;=*]|\.(?!\d))
    | (?P<comment>--[^\n]*|\#(?![>\-])[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<string>(?:[EeNnXxBb]|[Uu]&)?'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\\?\Z))
    | (?P<hexnum>0[xX][0-9A-Fa-f]+|0[bB][01]+)
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<dollar>\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<ident>"[^"]*(?:""[^"]*)*(?:"|\Z)|`[^`]*(?:``[^`]*)*(?:`|\Z))
    | (?P<placeholder>%\([^)%\s]{0,128}\)s|%s|\$\d+|\?|:[^\W\d]\w*|:\d+)
    | (?P<other>.)
    | \Z
    )
    """,
    re.VERBOSE | re.DOTALL,
)

_KIND_OF_GROUP: Final = {
    "string": STRING,
    "dollar": STRING,
    "ident": QUOTED_IDENT,
    "hexnum": NUMBER,
    "number": NUMBER,
    "placeholder": PLACEHOLDER,
    "word": WORD,
    "op": OPERATOR,
    "other": OPERATOR,
}


def _closed(quoted: str) -> bool:
    """Whether a quoted identifier that runs to the end of input has its closing quote.

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
    kinds = _KIND_OF_GROUP
    new = tuple.__new__  # Token(...) goes through a Python-level __new__: slower
    spaced = False
    end = len(text)
    for match in _PATTERN.finditer(text):
        group = match.lastgroup
        if group == "gap" or group is None:
            break  # only trailing whitespace was left
        if match.end("gap") > match.start():
            spaced = True
        if group == "comment":
            spaced = True
            continue
        value = match.group(group)
        kind = kinds[group]
        if kind == WORD:
            append(new(Token, (WORD, value, spaced, value.upper())))
        else:
            if kind == QUOTED_IDENT and match.end() == end and not _closed(value):
                kind = STRING  # an unterminated identifier may hide anything: hide it
            append(new(Token, (kind, value, spaced, "")))
        spaced = False
    if tokens:
        first = tokens[0]
        tokens[0] = new(Token, (first.kind, first.text, False, first.upper))
    return tokens
