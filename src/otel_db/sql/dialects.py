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


def readings_for(dialect: Dialect, text: str) -> tuple[LexConfig, ...]:
    """The distinct readings of ``dialect`` that can lex ``text`` differently."""
    has_backslash = "\\" in text
    has_dq = '"' in text
    has_hash = "#" in text
    has_dollar = "$" in text
    first_comment = text.find("/*")
    nested = first_comment >= 0 and text.find("/*", first_comment + 2) >= 0
    has_exec = "/*!" in text or "/*M!" in text
    has_bracket = "[" in text
    has_q = "q'" in text or "Q'" in text
    has_dashdash = "--" in text
    has_cr = "\r" in text
    has_u = "&'" in text
    mysql_dashdash_differs: bool | None = None
    letters = (
        "".join(c for c in _PREFIX_CANDIDATES if _is_prefix_letter(text, c)) if "'" in text else ""
    )
    seen: dict[LexConfig, None] = {}
    for reading in dialect.readings:
        prefixes = reading.prefixes
        e_strings = reading.e_strings
        if not has_backslash and e_strings:
            prefixes += "E"  # without a backslash, E'..' lexes like N'..'
            e_strings = False
        dashdash = reading.dashdash
        if not has_dashdash or (dashdash == "lf" and not has_cr):
            dashdash = "crlf"
        elif dashdash == "mysql" and not has_cr:
            if mysql_dashdash_differs is None:
                mysql_dashdash_differs = bool(_DASHDASH_NOT_MYSQL_COMMENT.search(text))
            if not mysql_dashdash_differs:
                dashdash = "crlf"
        effective = LexConfig(
            backslash=reading.backslash and has_backslash,
            e_strings=e_strings,
            prefixes=_prefixes_present(prefixes, letters),
            u_amp=reading.u_amp and has_u,
            dq_backslash=reading.dq_backslash and has_backslash and has_dq,
            dollar=reading.dollar and has_dollar,
            hash_comment=reading.hash_comment and has_hash,
            dashdash=dashdash,
            nested=reading.nested and nested,
            exec_comment=reading.exec_comment and has_exec,
            brackets=reading.brackets and has_bracket,
            q_quote=reading.q_quote and has_q,
        )
        seen[effective] = None
    return tuple(seen)
