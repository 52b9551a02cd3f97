"""What a failed connection attempt was: ``connection`` or ``authentication``.

A statement's error classification (:mod:`otel_db.sql.errors`) does not fit a connect:
libpq reports a wrong password or an unknown database as an ``OperationalError`` with no
SQLSTATE, and a refused socket and a bad password must be told apart (the first may
heal by itself, the second never does). Nothing here raises.
"""

from __future__ import annotations

import re
from typing import Final

from otel_db.sql.errors import ErrorFacts, classify_exception, qualified_name

CONNECTION: Final = "connection"
AUTHENTICATION: Final = "authentication"

# SQLSTATE class 28: invalid authorization specification (bad password, unknown role,
# no pg_hba.conf entry).
_AUTH_SQLSTATE_CLASS: Final = "28"
_UNKNOWN_DATABASE_SQLSTATE: Final = "3D000"
# MySQL/MariaDB: access denied (1045), to a database (1044), plugin auth (1698), the
# server's auth method refused by the client (1251, 2059).
_MYSQL_AUTH_ERRNOS: Final = frozenset({"1044", "1045", "1698", "1251", "2059"})
_MYSQL_UNKNOWN_DATABASE: Final = "1049"

# libpq's connect-time messages carry no SQLSTATE: the server's FATAL text is all there
# is (in English unless the server's lc_messages says otherwise).
_LIBPQ_MESSAGES: Final = (
    (re.compile(r"password authentication failed|authentication failed for user"), "28P01"),
    (
        re.compile(r"no password supplied|no pg_hba\.conf entry|role \"[^\"]*\" does not exist"),
        "28000",
    ),
    (re.compile(r"database \"[^\"]*\" does not exist"), _UNKNOWN_DATABASE_SQLSTATE),
)
_REDIS_AUTH: Final = re.compile(
    r"\b(WRONGPASS|NOAUTH|NOPERM)\b|invalid username-password|invalid password", re.I
)


def _status_code(error: BaseException, facts: ErrorFacts) -> str | None:
    if facts.status_code:
        return facts.status_code
    message = str(error)
    for pattern, code in _LIBPQ_MESSAGES:
        if pattern.search(message):
            return code
    return None


def _is_authentication(error: BaseException, status_code: str | None) -> bool:
    if status_code is not None and (
        status_code.startswith(_AUTH_SQLSTATE_CLASS) and len(status_code) == 5
    ):
        return True
    if status_code in _MYSQL_AUTH_ERRNOS:
        return True
    names = {cls.__name__ for cls in type(error).__mro__}
    if "AuthenticationError" in names or "InvalidAuthorizationSpecificationError" in names:
        return True
    module = type(error).__module__ or ""
    return module.startswith("redis") and bool(_REDIS_AUTH.search(str(error)))


def connect_failure_facts(error: BaseException) -> ErrorFacts:
    """Facts about a connection attempt that raised ``error``.

    ``retryable`` is true for what can heal by itself (refused, timed out, server
    starting or shutting down); a bad password or an unknown database never does.
    """
    try:
        facts = classify_exception(error)
        status_code = _status_code(error, facts)
        if facts.category == AUTHENTICATION or _is_authentication(error, status_code):
            return ErrorFacts(status_code, AUTHENTICATION, False, facts.error_type)
        permanent = status_code in (_UNKNOWN_DATABASE_SQLSTATE, _MYSQL_UNKNOWN_DATABASE)
        return ErrorFacts(status_code, CONNECTION, not permanent, facts.error_type)
    except Exception:
        return ErrorFacts(None, CONNECTION, False, qualified_name(type(error)))
