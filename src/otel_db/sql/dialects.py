"""The lexical rules of each SQL dialect, and which ones apply to a statement.

A dialect is a list of *readings*: the ways a server of that family may lex a
statement depending on settings the client cannot see (PostgreSQL's
``standard_conforming_strings``, MySQL's ``NO_BACKSLASH_ESCAPES`` and
``ANSI_QUOTES``, versioned ``/*!`` comments, ...). The tokenizer lexes a statement
under every reading that can make a difference for *that* text and keeps as code
only what every reading agrees is code: ambiguity hides more, never less.

A reading's flags that cannot matter for a text (no backslash in it, no ``#``, no
second ``/*``, ...) are normalised away first, so the usual statement is lexed once.
"""

from __future__ import annotations

import functools
import re
from typing import Final, NamedTuple


class LexConfig(NamedTuple):
    """One reading of the lexical rules."""

    backslash: bool  # backslash escapes in '...' (and in "..." when dq_backslash)
    e_strings: bool  # PostgreSQL E'...': backslash escapes whatever the setting
    prefixes: str  # upper-case letters that may prefix '...' (N'..', X'..', B'..')
    u_amp: bool  # PostgreSQL U&'...'
    dq_backslash: bool  # "..." is a string with backslash escapes (MySQL)
    dollar: bool  # PostgreSQL $$...$$ / $tag$...$tag$
    hash_comment: bool  # MySQL "# ..." comments
    dashdash: str  # "crlf": -- ends at \n or \r; "lf": at \n; "mysql": needs a space after
    nested: bool  # /* /* */ */ nests (PostgreSQL, SQL Server)
    exec_comment: bool  # MySQL/MariaDB /*! ... */ and /*M! ... */ hold code
    brackets: bool  # [identifier] (SQL Server, SQLite)
    q_quote: bool  # Oracle q'[...]' alternative quoting


class Dialect(NamedTuple):
    name: str
    readings: tuple[LexConfig, ...]  # the first is the dialect's usual reading
    # Whether "..." may be a string (MySQL without ANSI_QUOTES, SQLite when no such
    # column exists, SQL Server with QUOTED_IDENTIFIER OFF): hidden unless it can
    # only be a name.
    dq_ambiguous: bool


_PG: Final = LexConfig(
    backslash=False, e_strings=True, prefixes="NXB", u_amp=True, dq_backslash=False,
    dollar=True, hash_comment=False, dashdash="crlf", nested=True, exec_comment=False,
    brackets=False, q_quote=False,
)  # fmt: skip
_MYSQL: Final = LexConfig(
    backslash=True, e_strings=False, prefixes="NXB", u_amp=False, dq_backslash=True,
    dollar=False, hash_comment=True, dashdash="mysql", nested=False, exec_comment=True,
    brackets=False, q_quote=False,
)  # fmt: skip
_SQLITE: Final = LexConfig(
    backslash=False, e_strings=False, prefixes="X", u_amp=False, dq_backslash=False,
    dollar=False, hash_comment=False, dashdash="lf", nested=False, exec_comment=False,
    brackets=True, q_quote=False,
)  # fmt: skip
_MSSQL: Final = _SQLITE._replace(prefixes="N", nested=True)
_ORACLE: Final = _SQLITE._replace(prefixes="N", brackets=False, q_quote=True, dashdash="crlf")
# "--" followed by something other than a space or control character: MySQL reads
# no comment there.
_DASHDASH_NOT_MYSQL_COMMENT: Final = re.compile(r"--[^\x00-\x20]")


def _mysql_readings() -> tuple[LexConfig, ...]:
    out = []
    for exec_comment in (True, False):  # a /*!NNNNN version the server does not reach
        base = _MYSQL._replace(exec_comment=exec_comment)
        out.append(base)
        out.append(base._replace(dq_backslash=False))  # ANSI_QUOTES
        out.append(base._replace(backslash=False, dq_backslash=False))  # NO_BACKSLASH_ESCAPES
    return tuple(out)


POSTGRESQL: Final = Dialect(
    "postgresql",
    (_PG, _PG._replace(backslash=True)),  # standard_conforming_strings on / off
    dq_ambiguous=False,
)
MYSQL: Final = Dialect("mysql", _mysql_readings(), dq_ambiguous=True)
SQLITE: Final = Dialect("sqlite", (_SQLITE,), dq_ambiguous=True)
# SQL Server: QUOTED_IDENTIFIER OFF makes "..." a string; whether "--" ends at \r
# too is not documented, so both.
MSSQL: Final = Dialect("mssql", (_MSSQL, _MSSQL._replace(dashdash="crlf")), dq_ambiguous=True)
ORACLE: Final = Dialect("oracle", (_ORACLE,), dq_ambiguous=False)
UNKNOWN: Final = Dialect(
    "unknown",
    POSTGRESQL.readings + MYSQL.readings + SQLITE.readings + MSSQL.readings + ORACLE.readings,
    dq_ambiguous=True,
)

DIALECTS: Final = (POSTGRESQL, MYSQL, SQLITE, MSSQL, ORACLE, UNKNOWN)

#: ``db.system.name`` (and legacy ``db.system``) values -> dialect.
_BY_SYSTEM: Final = {
    "postgresql": POSTGRESQL,
    "cockroachdb": POSTGRESQL,
    "mysql": MYSQL,
    "mariadb": MYSQL,
    "sqlite": SQLITE,
    "microsoft.sql_server": MSSQL,
    "mssql": MSSQL,
    "oracle.db": ORACLE,
    "oracle": ORACLE,
}


#: ``db.system.name`` -> dialect name, for callers that key caches by a plain string.
NAME_BY_SYSTEM: Final = {system: dialect.name for system, dialect in _BY_SYSTEM.items()}
BY_NAME: Final = {dialect.name: dialect for dialect in DIALECTS}


def dialect_for_system(system: object) -> Dialect:
    """The dialect of a span's ``db.system.name``; unknown systems get every reading."""
    found = _BY_SYSTEM.get(system) if isinstance(system, str) else None
    return UNKNOWN if found is None else found


_PREFIX_CANDIDATES: Final = "ENXB"
# Occurrences of a letter before a quote examined before assuming it is a prefix.
_MAX_PREFIX_PROBES: Final = 32


def _is_prefix_letter(text: str, letter: str) -> bool:
    """Whether ``letter`` (either case) stands right before a quote, not inside a word."""
    for candidate in (letter, letter.lower()):
        needle = candidate + "'"
        at = text.find(needle)
        probes = 0
        while at >= 0:
            if at == 0 or not (text[at - 1].isalnum() or text[at - 1] in "_$'\"`"):
                return True
            probes += 1
            if probes >= _MAX_PREFIX_PROBES:
                return True  # assume so: another reading costs less than searching on
            at = text.find(needle, at + 2)
    return False


def _prefixes_present(prefixes: str, letters: str) -> str:
    return "".join(letter for letter in prefixes if letter in letters)


class _Features(NamedTuple):
    """What in a text can make readings differ."""

    backslash: bool
    dq: bool
    hash: bool
    dollar: bool
    nested: bool
    exec_comment: bool
    bracket: bool
    q: bool
    dashdash: bool
    cr: bool
    u_amp: bool
    mysql_dashdash_differs: bool
    letters: str


def readings_for(dialect: Dialect, text: str) -> tuple[LexConfig, ...]:
    """The distinct readings of ``dialect`` that can lex ``text`` differently."""
    first_comment = text.find("/*")
    has_dashdash = "--" in text
    features = _Features(
        backslash="\\" in text,
        dq='"' in text,
        hash="#" in text,
        dollar="$" in text,
        nested=first_comment >= 0 and text.find("/*", first_comment + 2) >= 0,
        exec_comment="/*!" in text or "/*M!" in text,
        bracket="[" in text,
        q="q'" in text or "Q'" in text,
        dashdash=has_dashdash,
        cr="\r" in text,
        u_amp="&'" in text,
        mysql_dashdash_differs=has_dashdash
        and _DASHDASH_NOT_MYSQL_COMMENT.search(text) is not None,
        letters=(
            "".join(c for c in _PREFIX_CANDIDATES if _is_prefix_letter(text, c))
            if "'" in text
            else ""
        ),
    )
    if BY_NAME.get(dialect.name) is dialect:  # (hashing a Dialect costs; its name not)
        return _known_readings(dialect.name, features)
    return _readings(dialect, features)


@functools.lru_cache(maxsize=512)
def _known_readings(name: str, features: _Features) -> tuple[LexConfig, ...]:
    return _readings(BY_NAME[name], features)


def _readings(dialect: Dialect, features: _Features) -> tuple[LexConfig, ...]:
    seen: dict[LexConfig, None] = {}
    for reading in dialect.readings:
        prefixes = reading.prefixes
        e_strings = reading.e_strings
        if not features.backslash and e_strings:
            prefixes += "E"  # without a backslash, E'..' lexes like N'..'
            e_strings = False
        dashdash = reading.dashdash
        same_as_plain = dashdash == "lf" or (
            dashdash == "mysql" and not features.mysql_dashdash_differs
        )
        if not features.dashdash or (same_as_plain and not features.cr):
            dashdash = "crlf"
        effective = LexConfig(
            backslash=reading.backslash and features.backslash,
            e_strings=e_strings,
            prefixes=_prefixes_present(prefixes, features.letters),
            u_amp=reading.u_amp and features.u_amp,
            dq_backslash=reading.dq_backslash and features.backslash and features.dq,
            dollar=reading.dollar and features.dollar,
            hash_comment=reading.hash_comment and features.hash,
            dashdash=dashdash,
            nested=reading.nested and features.nested,
            exec_comment=reading.exec_comment and features.exec_comment,
            brackets=reading.brackets and features.bracket,
            q_quote=reading.q_quote and features.q,
        )
        seen[effective] = None
    return tuple(seen)
