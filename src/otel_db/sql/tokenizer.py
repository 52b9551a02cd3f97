"""A dialect-aware, bounded SQL tokenizer.

One compiled regular expression per reading (see :mod:`otel_db.sql.dialects`),
tried left to right, splits a statement into tokens. Every alternative matches in
time linear in what it consumes and never backtracks across the input (the
"unrolled loop" form for quoted text, a mandatory end anchor for unterminated
text). The last alternative matches any single character, so tokenizing cannot fail.

When a dialect has several readings that lex a statement differently (a
backslash in a PostgreSQL string: ``standard_conforming_strings`` on or off), the
statement is lexed under each and only tokens every reading agrees on (same start,
same end) stay as they are; everything between two points where all readings
agree becomes one hidden literal. So a character is shown only if it is code under
every reading: ambiguity hides more, never less.

Bounded work: at most :data:`MAX_LEX_CHARS` characters are read and at most
:data:`MAX_TOKENS` tokens produced (:data:`MAX_TOKENS_ALL_READINGS` over all
readings); whatever lies beyond becomes one hidden literal. Long lists of
literals (``IN (1, 2, ...)``, ``VALUES (..), (..)``) are matched as one token by
the regular expression, so they cost almost nothing at the Python level.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Final, NamedTuple

from otel_db.sql.dialects import UNKNOWN, Dialect, LexConfig, readings_for

# Token kinds.
WORD: Final = "word"  # keyword or bare identifier
QUOTED_IDENT: Final = "ident"  # "quoted", `backticked` or [bracketed] identifier
DOUBLE_QUOTED: Final = "dq"  # "x" that may be a string: resolved by context (tokenize)
STRING: Final = "string"  # any quoted literal, and any region readings disagree on
NUMBER: Final = "number"
PLACEHOLDER: Final = "placeholder"
OPERATOR: Final = "op"  # punctuation and operators, including ( ) , ; .
LITERAL_RUN: Final = "lrun"  # ", 1, 'a', 3, ..." (8 or more literal items)
PLACEHOLDER_RUN: Final = "prun"  # ", %s, 2, %s, ..." (8 or more items, some placeholders)
ROW_RUN: Final = "rows"  # ", (1, 'a'), (2, 'b'), ..." (4 or more rows of literals)
_COMMENT: Final = "comment"

LITERAL_KINDS: Final = frozenset({STRING, NUMBER, LITERAL_RUN, ROW_RUN})
RUN_KINDS: Final = frozenset({LITERAL_RUN, PLACEHOLDER_RUN, ROW_RUN})

#: Characters read per statement; the rest is one hidden literal.
MAX_LEX_CHARS: Final = 512 * 1024
#: Tokens produced per statement (and per reading when there is only one); the rest
#: is one hidden literal.
MAX_TOKENS: Final = 2048
#: Tokens produced per statement over all its readings (each gets an equal share,
#: at least MIN_TOKENS_PER_READING).
MAX_TOKENS_ALL_READINGS: Final = 4096
MIN_TOKENS_PER_READING: Final = 256
# Up to this length the token count cannot exceed MAX_TOKENS: the fast path.
_FAST_CHARS: Final = MAX_TOKENS


class Token(NamedTuple):
    kind: str
    text: str
    # Whether whitespace or a comment separated this token from the previous one.
    spaced: bool
    # ``text.upper()`` for words (keywords are case-insensitive), "" otherwise.
    upper: str = ""


_new = tuple.__new__  # Token(...) goes through a Python-level __new__: slower

# Possessive quantifiers (Python 3.11+) keep sre from saving a backtrack point per
# repetition: the same matches, several times faster on long literals and lists.
_P: Final = "+" if sys.version_info >= (3, 11) else ""

# A literal list item every reading lexes alike: a number not glued to a word, a
# '...' without quote or backslash inside (so no escape rule matters), NULL/TRUE/FALSE.
_LITERAL_ITEM: Final = (
    rf"(?:[-+]?{_P}(?:\d+{_P}(?:\.\d*{_P})?{_P}|\.\d+{_P})(?:[eE][+-]?\d+{_P})?{_P}"
    r"(?![\w.$'\"`])"
    rf"|'[^'\\]*{_P}'(?![\w'\"`])"
    r"|(?i:NULL|TRUE|FALSE)(?![\w$'\"`]))"
)
_PLACEHOLDER_ITEM: Final = r"(?:%s|%\([A-Za-z_]\w{0,63}\)s|\?\d*|\$\d+|:[A-Za-z_]\w*)(?![\w$'\"`(])"
_ANY_ITEM: Final = f"(?:{_LITERAL_ITEM}|{_PLACEHOLDER_ITEM})"
_LITERAL_RUN: Final = rf",\s*{_LITERAL_ITEM}(?:\s*,\s*{_LITERAL_ITEM}){{7,}}{_P}"
_PLACEHOLDER_RUN: Final = rf",\s*{_ANY_ITEM}(?:\s*,\s*{_ANY_ITEM}){{7,}}{_P}"
_ROW: Final = rf"\(\s*{_LITERAL_ITEM}(?:\s*,\s*{_LITERAL_ITEM})*{_P}\s*\)"
_ROW_RUN: Final = rf",\s*{_ROW}(?:\s*,\s*{_ROW}){{3,}}{_P}"

_SQ_STANDARD: Final = rf"'[^']*{_P}(?:''[^']*{_P})*{_P}(?:'|\Z)"
_SQ_BACKSLASH: Final = rf"'[^'\\]*{_P}(?:(?:\\.|'')[^'\\]*{_P})*{_P}(?:'|\\?\Z)"
_DQ_STANDARD: Final = rf'"[^"]*{_P}(?:""[^"]*{_P})*{_P}(?:"|\Z)'
_DQ_BACKSLASH: Final = rf'"[^"\\]*{_P}(?:(?:\\.|"")[^"\\]*{_P})*{_P}(?:"|\\?\Z)'


@functools.lru_cache(maxsize=64)
def pattern_for(config: LexConfig) -> re.Pattern[str]:
    """The token pattern of one reading.

    Groups: 1 gap, 2 word, 3 literal run, 4 placeholder run, 5 row run, 6 operators,
    numbers, placeholders and quoted names, 7 comment, 8 string (9 and 10 inside it:
    the q-quote delimiter and the dollar tag), 11 double-quoted, 12 any other
    character. The most frequent tokens come first: each alternative tried costs.
    """
    plain = _SQ_BACKSLASH if config.backslash else _SQ_STANDARD
    letters = config.prefixes + config.prefixes.lower()
    prefix = f"[{letters}]?" if letters else ""
    strings = []
    glued = []  # what may not start a word: a prefix letter glued to its quote
    if letters:
        glued.append(f"[{letters}]'")
    if config.e_strings:
        strings.append("[Ee]" + _SQ_BACKSLASH)
        glued.append("[Ee]'")
    if config.u_amp:
        strings.append("[Uu]&" + _SQ_STANDARD)
        glued.append("[Uu]&'")
    if config.q_quote:
        # q'[..]', q'{..}', q'(..)', q'<..>' or q'X..X' for any other delimiter X.
        strings.append(
            r"[Nn]?[Qq]'(?:\[.*?(?:\]'|\Z)|\{.*?(?:\}'|\Z)|\(.*?(?:\)'|\Z)|<.*?(?:>'|\Z)"
            r"|(?P<qd>[^\s\[{(<]).*?(?:(?P=qd)'|\Z)|\Z)"
        )
        glued.append("[Nn]?[Qq]'")
    else:
        strings.append("(?P<qd>(?!))")
    strings.append(prefix + plain)
    if config.dollar:
        strings.append(r"\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?(?:\$(?P=tag)\$|\Z)")
    else:
        strings.append("(?P<tag>(?!))")

    comments = []
    if config.exec_comment:
        comments.append(r"/\*M?!\d*|\*/")  # the markers go, the code inside stays
    comments.append(r"/\*.*?(?:\*/|\Z)")
    if config.dashdash == "crlf":
        comments.append(r"--[^\n\r]*")
    elif config.dashdash == "lf":
        comments.append(r"--[^\n]*")
    else:
        comments.append(r"--(?=[\x00-\x20]|\Z)[^\n]*")
    if config.hash_comment:
        comments.append(r"\#[^\n]*")

    others = [rf"`[^`]*{_P}(?:``[^`]*{_P})*{_P}(?:`|\Z)"]
    if config.brackets:
        others.append(rf"\[[^\]]*{_P}(?:\]\][^\]]*{_P})*{_P}(?:\]|\Z)")
    others += [
        r"::|<=|>=|<>|!=|\|\||->>|->|[(),;=]|\.(?!\d)",
        r"\*(?!/)" if config.exec_comment else r"\*",
        r"0[xX][0-9A-Fa-f_]+|0[bB][01_]+|0[oO][0-7_]+",
        r"(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?",
        r"%\([^)%\s]{0,128}\)s|%s|\$\d+|\?\d*|:[^\W\d]\w*|:\d+",
        r"\$[\w$]*" if not config.dollar else r"(?!)",
    ]
    word_guard = f"(?!(?:{'|'.join(glued)}))" if glued else ""
    dq = _DQ_BACKSLASH if config.dq_backslash else _DQ_STANDARD
    source = (
        r"(\s*)(?:"
        rf"({word_guard}[^\W\d][\w$]*)"
        rf"|({_LITERAL_RUN})|({_PLACEHOLDER_RUN})|({_ROW_RUN})"
        rf"|({'|'.join(others)})"
        rf"|({'|'.join(comments)})"
        rf"|({'|'.join(strings)})"
        rf"|({dq})"
        r"|(.)"
        r"|\Z)"
    )
    return re.compile(source, re.DOTALL)


_FIRST_CHAR_KIND: Final = {
    "`": QUOTED_IDENT,
    "[": QUOTED_IDENT,
    "?": PLACEHOLDER,
    **dict.fromkeys("0123456789", NUMBER),
}


def _kind_of(token: str) -> str:
    kind = _FIRST_CHAR_KIND.get(token[0])
    if kind is not None:
        return kind if token != "[" else OPERATOR
    if token[0].isdigit():
        return NUMBER  # digits of other scripts
    if len(token) == 1:
        return OPERATOR
    first, second = token[0], token[1]
    if first == ".":
        return NUMBER
    if first == "$" or first == "%":
        return PLACEHOLDER
    if first == ":":
        return OPERATOR if second == ":" else PLACEHOLDER
    return OPERATOR


def _closed(quoted: str) -> bool:
    """Whether a quoted identifier has its closing quote.

    Doubled quotes inside are escapes, so it is closed when it ends in an odd run
    of quote characters after the opening one.
    """
    quote = "]" if quoted[0] == "[" else quoted[0]
    body = quoted[1:]
    run = len(body) - len(body.rstrip(quote))
    return run % 2 == 1


def _tokenize_fast(text: str, config: LexConfig) -> list[Token]:
    """One reading, short text, no nested comment: findall, no positions."""
    tokens: list[Token] = []
    append = tokens.append
    new = _new
    kind_of = _kind_of
    spaced = False
    for gap, word, lrun, prun, rows, other, comment, string, _q, _t, dq, single in pattern_for(
        config
    ).findall(text):
        if gap:
            spaced = True
        if word:
            append(new(Token, (WORD, word, spaced, word.upper())))
        elif other:
            append(new(Token, (kind_of(other), other, spaced, "")))
        elif string:
            append(new(Token, (STRING, string, spaced, "")))
        elif comment:
            spaced = True
            continue
        elif single:
            append(new(Token, (kind_of(single), single, spaced, "")))
        elif dq:
            append(new(Token, (DOUBLE_QUOTED, dq, spaced, "")))
        elif lrun:
            append(new(Token, (LITERAL_RUN, lrun, spaced, "")))
        elif prun:
            append(new(Token, (PLACEHOLDER_RUN, prun, spaced, "")))
        elif rows:
            append(new(Token, (ROW_RUN, rows, spaced, "")))
        else:
            break  # end of input
        spaced = False
    return tokens


_NESTING: Final = re.compile(r"/\*|\*/")


def _nested_comment_end(text: str, start: int) -> int:
    depth = 0
    for match in _NESTING.finditer(text, start):
        depth += 1 if match.group() == "/*" else -1
        if depth == 0:
            return match.end()
    return len(text)


# A positioned token: (start, end, kind, text).
_Spanned = tuple[int, int, str, str]


def _lex_spans(text: str, config: LexConfig, max_tokens: int = MAX_TOKENS) -> list[_Spanned]:
    """Every token (comments included) with its position, at most ``max_tokens`` of
    them; what is left after that is one hidden literal."""
    out: list[_Spanned] = []
    append = out.append
    match = pattern_for(config).match
    nested = config.nested
    kind_of = _kind_of
    pos = 0
    length = len(text)
    while len(out) < max_tokens:
        m = match(text, pos)
        gap, word, lrun, prun, _rows, other, comment, string, dq, single = m.group(
            1, 2, 3, 4, 5, 6, 7, 8, 11, 12
        )
        start = pos + len(gap)
        end = m.end()
        if start == end:
            return out  # end of input
        if word:
            kind = WORD
        elif other:
            kind = kind_of(other)
        elif single:
            kind = kind_of(single)
        elif string:
            kind = STRING
        elif comment:
            kind = _COMMENT
            if nested and comment.startswith("/*"):
                end = _nested_comment_end(text, start)
        elif dq:
            kind = DOUBLE_QUOTED
        elif lrun:
            kind = LITERAL_RUN
        elif prun:
            kind = PLACEHOLDER_RUN
        else:
            kind = ROW_RUN
        append((start, end, kind, text[start:end]))
        pos = end
    rest = len(text) - len(text[pos:].lstrip())
    if rest < length:
        append((rest, length, STRING, text[rest:]))
    return out


def _unified_kind(kinds: set[str], primary: str) -> str | None:
    """The kind of a token all readings agree on; None: drop it (a comment)."""
    if len(kinds) == 1:
        return None if primary == _COMMENT else primary
    if _COMMENT in kinds or kinds & LITERAL_KINDS:
        return STRING
    if DOUBLE_QUOTED in kinds:
        return DOUBLE_QUOTED
    if PLACEHOLDER_RUN in kinds:
        return STRING
    return primary


def _merge(text: str, streams: list[list[_Spanned]]) -> list[_Spanned]:
    """Tokens every stream agrees on; each region between agreement points becomes
    one hidden literal (dropped if every stream saw only comments there)."""
    out: list[_Spanned] = []
    indexes = [0] * len(streams)
    lengths = [len(stream) for stream in streams]
    length = len(text)
    first = streams[0]
    while True:
        i0 = indexes[0]
        head = first[i0] if i0 < lengths[0] else None
        agreed = head is not None
        if agreed:
            kinds = {head[2]}
            for stream, i, n in zip(streams, indexes, lengths, strict=True):
                if i >= n or stream[i][0] != head[0] or stream[i][1] != head[1]:
                    agreed = False
                    break
                kinds.add(stream[i][2])
        if agreed:
            kind = _unified_kind(kinds, head[2])
            if kind is not None:
                out.append((head[0], head[1], kind, head[3]))
            indexes = [i + 1 for i in indexes]
            continue
        if all(i >= n for i, n in zip(indexes, lengths, strict=True)):
            return out
        # Disagreement: find the next position where every stream starts a token.
        start = min(
            stream[i][0] for stream, i, n in zip(streams, indexes, lengths, strict=True) if i < n
        )
        only_comments = True
        target = start + 1
        while True:
            settled = True
            for s, stream in enumerate(streams):
                i, n = indexes[s], lengths[s]
                while i < n and stream[i][0] < target:
                    if stream[i][2] != _COMMENT:
                        only_comments = False
                    i += 1
                indexes[s] = i
                if i >= n:
                    if target != length:
                        target = length
                        settled = False
                    continue
                if stream[i][0] > target:
                    target = stream[i][0]
                    settled = False
            if settled:
                break
        end = target
        if end >= length:
            indexes = lengths[:]
            end = length
        if not only_comments:
            region = text[start:end].rstrip()
            if region:
                out.append((start, start + len(region), STRING, region))


def _spanned_tokens(text: str, spanned: list[_Spanned]) -> list[Token]:
    tokens: list[Token] = []
    append = tokens.append
    new = _new
    previous_end = 0
    for start, end, kind, token_text in spanned:
        if kind == _COMMENT:
            continue
        upper = token_text.upper() if kind == WORD else ""
        append(new(Token, (kind, token_text, start > previous_end, upper)))
        previous_end = end
    return tokens


# "..." is a name here whatever the dialect: after these words, or next to a dot.
_NAME_AFTER: Final = frozenset(
    {"FROM", "JOIN", "INTO", "UPDATE", "TABLE", "VIEW", "INDEX", "EXISTS", "ONLY"}
)


def _resolve_double_quotes(tokens: list[Token], ambiguous: bool) -> None:
    """Make each "..." a name (kept) or a value (hidden)."""
    last = len(tokens) - 1
    new = _new
    for i, token in enumerate(tokens):
        if token.kind != DOUBLE_QUOTED:
            continue
        kind = QUOTED_IDENT
        if not _closed(token.text):
            kind = STRING  # unterminated: may hide anything
        elif ambiguous:
            before = tokens[i - 1] if i > 0 else None
            name = (i < last and tokens[i + 1].text == ".") or (
                before is not None and (before.text == "." or before.upper in _NAME_AFTER)
            )
            if not name:
                kind = STRING
        tokens[i] = new(Token, (kind, token.text, token.spaced, ""))


def tokenize(text: str, dialect: Dialect = UNKNOWN) -> list[Token]:
    """Split ``text`` into tokens under ``dialect``'s rules; whitespace and comments
    are dropped.

    Each token records whether something (whitespace or a comment) separated it
    from the token before, so callers can rebuild readable text.
    """
    cut = len(text) > MAX_LEX_CHARS
    if cut:
        text = text[:MAX_LEX_CHARS]
    readings = readings_for(dialect, text)
    if len(readings) == 1 and len(text) <= _FAST_CHARS and not readings[0].nested:
        tokens = _tokenize_fast(text, readings[0])
    else:
        budget = min(
            MAX_TOKENS, max(MIN_TOKENS_PER_READING, MAX_TOKENS_ALL_READINGS // len(readings))
        )
        streams = [_lex_spans(text, reading, budget) for reading in readings]
        merged = streams[0] if len(streams) == 1 else _merge(text, streams)
        tokens = _spanned_tokens(text, merged)
    if not tokens:
        return tokens
    first, last = tokens[0], tokens[-1]
    if first.spaced:
        tokens[0] = _new(Token, (first.kind, first.text, False, first.upper))
    if cut and last.kind != STRING:
        tokens.append(_new(Token, (STRING, "", True, "")))  # what was not read
    last = tokens[-1]
    if last.kind == QUOTED_IDENT and not _closed(last.text):
        # Only the last token can be unterminated; it may hide anything.
        tokens[-1] = _new(Token, (STRING, last.text, last.spaced, ""))
    if '"' in text:
        _resolve_double_quotes(tokens, dialect.dq_ambiguous)
    return tokens
