"""Classify database errors: status code, category, retryability, scrubbed message.

Works on exception objects (:func:`classify_exception`) and on what a span's
exception event keeps, the type name and the message
(:func:`classify_exception_event`). No driver is imported unless it is needed to
name a SQLSTATE, and then only once. Nothing here raises.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Final

from otel_db.sql import driver_errors
from otel_db.sql.dialects import Dialect, dialect_for_system
from otel_db.sql.scrub import scrub

_logger = logging.getLogger(__name__)

CONSTRAINT_VIOLATION: Final = "constraint_violation"
DEADLOCK: Final = "deadlock"
SERIALIZATION_FAILURE: Final = "serialization_failure"
LOCK_TIMEOUT: Final = "lock_timeout"
QUERY_CANCELED: Final = "query_canceled"
CONNECTION: Final = "connection"
SYNTAX: Final = "syntax"
OTHER: Final = "other"

_RETRYABLE: Final = frozenset({DEADLOCK, SERIALIZATION_FAILURE})

MAX_MESSAGE_CHARS: Final = 1000


@dataclass(frozen=True, slots=True)
class ErrorFacts:
    """What otel_db records about a failed database call."""

    status_code: str | None  # db.response.status_code
    category: str  # otel_db.error.category, one of attributes.ERROR_CATEGORIES
    retryable: bool  # otel_db.error.retryable
    error_type: str  # error.type, fully qualified exception class name


# --- PostgreSQL -------------------------------------------------------------------

_SQLSTATE_CATEGORY: Final = {
    "40P01": DEADLOCK,
    "40001": SERIALIZATION_FAILURE,
    "55P03": LOCK_TIMEOUT,
    "57014": QUERY_CANCELED,
    "57P01": CONNECTION,
    "57P02": CONNECTION,
    "57P03": CONNECTION,
}
_SQLSTATE_CLASS_CATEGORY: Final = {"23": CONSTRAINT_VIOLATION, "08": CONNECTION, "42": SYNTAX}


def category_of_sqlstate(sqlstate: str) -> str:
    category = _SQLSTATE_CATEGORY.get(sqlstate)
    if category is None:
        category = _SQLSTATE_CLASS_CATEGORY.get(sqlstate[:2], OTHER)
    return category


# --- MySQL / MariaDB --------------------------------------------------------------

_MYSQL_CATEGORY: Final = {
    **dict.fromkeys((1062, 1451, 1452, 1048, 1216, 1217, 1557, 1586, 3819), CONSTRAINT_VIOLATION),
    1213: DEADLOCK,
    1205: LOCK_TIMEOUT,
    **dict.fromkeys((1317, 3024, 1969), QUERY_CANCELED),
    **dict.fromkeys((2002, 2003, 2005, 2006, 2013, 2055, 4031, 1040, 1053), CONNECTION),
    **dict.fromkeys((1064, 1146, 1054, 1149), SYNTAX),
}


def category_of_mysql_errno(errno: int) -> str:
    return _MYSQL_CATEGORY.get(errno, OTHER)


# --- SQLite -----------------------------------------------------------------------


def category_of_sqlite(errorname: str | None, message: str) -> str:
    name = errorname or ""
    if name.startswith("SQLITE_CONSTRAINT"):
        return CONSTRAINT_VIOLATION
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LOCK_TIMEOUT
    if name.startswith("SQLITE_INTERRUPT"):
        return QUERY_CANCELED
    lowered = message.lower()
    if "syntax error" in lowered or "no such table" in lowered or "no such column" in lowered:
        return SYNTAX
    return OTHER


_SQLITE_MESSAGE_NAMES: Final = (
    ("unique constraint failed", "SQLITE_CONSTRAINT_UNIQUE"),
    ("foreign key constraint failed", "SQLITE_CONSTRAINT_FOREIGNKEY"),
    ("not null constraint failed", "SQLITE_CONSTRAINT_NOTNULL"),
    ("check constraint failed", "SQLITE_CONSTRAINT_CHECK"),
    ("constraint failed", "SQLITE_CONSTRAINT"),
    ("database table is locked", "SQLITE_LOCKED"),
    ("database is locked", "SQLITE_BUSY"),
    ("interrupted", "SQLITE_INTERRUPT"),
    ("syntax error", "SQLITE_ERROR"),
    ("no such table", "SQLITE_ERROR"),
    ("no such column", "SQLITE_ERROR"),
)


def _sqlite_name_from_message(message: str) -> str | None:
    lowered = message.lower()
    for needle, name in _SQLITE_MESSAGE_NAMES:
        if needle in lowered:
            return name
    return None


# --- Redis ------------------------------------------------------------------------

_REDIS_PREFIX: Final = re.compile(r"[A-Z][A-Z_]+(?=\s|$)")
_REDIS_CONNECTION_PREFIXES: Final = frozenset({"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN"})


def _redis_facts_from_message(message: str, error_type: str) -> ErrorFacts:
    match = _REDIS_PREFIX.match(message)
    prefix = match.group() if match else None
    lowered = message.lower()
    if prefix in _REDIS_CONNECTION_PREFIXES:
        category = CONNECTION
    elif prefix == "ERR" and (
        "unknown command" in lowered or "syntax error" in lowered or "wrong number" in lowered
    ):
        category = SYNTAX
    else:
        category = OTHER
    return ErrorFacts(prefix, category, False, error_type)


# --- helpers ----------------------------------------------------------------------


def qualified_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "?")
    return f"{module}.{name}" if module and module != "builtins" else name


def _facts(status: str | None, category: str, error_type: str) -> ErrorFacts:
    return ErrorFacts(status, category, category in _RETRYABLE, error_type)


def _mro_names(exc: BaseException) -> list[tuple[str, str]]:
    return [(getattr(c, "__module__", "") or "", c.__name__) for c in type(exc).__mro__]


def _unwrap(exc: BaseException) -> BaseException:
    """The driver exception behind SQLAlchemy's wrappers (DBAPIError.orig, and the
    asyncpg adapter's ``__cause__``)."""
    for _ in range(4):
        module = type(exc).__module__ or ""
        orig = getattr(exc, "orig", None)
        if module.startswith("sqlalchemy") and isinstance(orig, BaseException):
            exc = orig
            continue
        cause = exc.__cause__
        if module.startswith("sqlalchemy") and isinstance(cause, BaseException):
            # AsyncAdapt_asyncpg_dbapi.Error: the real asyncpg error is the cause.
            exc = cause
            continue
        break
    return exc


def _facts_of(exc: BaseException) -> ErrorFacts:
    error_type = qualified_name(type(exc))
    module = (type(exc).__module__ or "").split(".")[0]
    message = str(exc)

    # MySQL / MariaDB first: pymysql, MySQLdb, mysql.connector put the errno in
    # args[0]; recent pymysql also has a ``sqlstate`` (e.g. "23000"), which is too
    # coarse to be the status code.
    if module in ("pymysql", "MySQLdb", "mysql", "mariadb", "aiomysql", "asyncmy"):
        errno = getattr(exc, "errno", None)
        args = getattr(exc, "args", ())
        if not isinstance(errno, int) and args and isinstance(args[0], int):
            errno = args[0]
        if isinstance(errno, int) and errno > 0:
            return _facts(str(errno), category_of_mysql_errno(errno), error_type)
        if any(name in ("InterfaceError", "OperationalError") for _, name in _mro_names(exc)):
            return _facts(None, CONNECTION, error_type)
        return _facts(None, OTHER, error_type)

    # PostgreSQL: psycopg2 .pgcode, psycopg 3 / asyncpg .sqlstate (also on the
    # SQLAlchemy asyncpg adapter's exceptions).
    sqlstate = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
    if not sqlstate:
        diag = getattr(exc, "diag", None)
        sqlstate = getattr(diag, "sqlstate", None) if diag is not None else None
    if not sqlstate:
        sqlstate = driver_errors.pg8000_sqlstate(exc)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return _facts(sqlstate, category_of_sqlstate(sqlstate), error_type)

    # SQLite.
    errorname = getattr(exc, "sqlite_errorname", None)
    if module == "sqlite3" or isinstance(errorname, str):
        name = errorname if isinstance(errorname, str) else _sqlite_name_from_message(message)
        return _facts(name, category_of_sqlite(name, message), error_type)

    names = _mro_names(exc)
    # MongoDB and DynamoDB (their own module: codes and classes of their own).
    if module in ("pymongo", "botocore"):
        from otel_db.nosql import errors as nosql_errors

        class_names = {name for _, name in names}
        if module == "pymongo":
            return nosql_errors.pymongo_exception_facts(exc, class_names, error_type)
        return nosql_errors.botocore_exception_facts(exc, class_names, error_type)

    # Redis.
    if module == "redis":
        class_names = {name for mod, name in names if mod.startswith("redis")}
        if "WatchError" in class_names:
            return _facts(None, SERIALIZATION_FAILURE, error_type)
        if class_names & {"ConnectionError", "TimeoutError", "AuthenticationError"}:
            return _facts(None, CONNECTION, error_type)
        if "ResponseError" in class_names:
            return _redis_facts_from_message(message, error_type)
        return _facts(None, OTHER, error_type)

    # Python-level connection problems (no server code): psycopg2 OperationalError
    # without pgcode, InterfaceError "connection already closed", asyncpg
    # InterfaceError, socket errors.
    db_module = module in ("psycopg2", "psycopg", "asyncpg", "pg8000")
    for mod, name in names:
        if name in ("InterfaceError", "OperationalError") and db_module:
            return _facts(None, CONNECTION, error_type)
        if mod == "builtins" and name in ("ConnectionError", "TimeoutError"):
            return _facts(None, CONNECTION, error_type)
    return _facts(None, OTHER, error_type)


def classify_exception(exc: BaseException) -> ErrorFacts:
    """Facts about ``exc``; SQLAlchemy wrappers are unwrapped to the driver's error,
    whose class also gives ``error_type``. Never raises."""
    try:
        return _facts_of(_unwrap(exc))
    except Exception:
        _logger.debug("otel_db: could not classify an exception", exc_info=True)
        try:
            error_type = qualified_name(type(exc))
        except Exception:
            error_type = "_OTHER"
        return ErrorFacts(None, OTHER, False, error_type)


# --- from an exception event (type name and message only) ------------------------


@functools.cache
def _psycopg_sqlstates() -> dict[str, str]:
    """Class name -> SQLSTATE, from psycopg2 (or psycopg 3) when installed."""
    table: dict[str, str] = {}
    try:
        import psycopg2.errorcodes
        import psycopg2.errors

        for attr, code in vars(psycopg2.errorcodes).items():
            if attr.isupper() and isinstance(code, str) and len(code) == 5:
                try:
                    table.setdefault(psycopg2.errors.lookup(code).__name__, code)
                except (KeyError, Exception):
                    continue
    except Exception:
        pass
    if not table:
        try:
            import psycopg.errors

            table.update(_sqlstates_of_classes(psycopg.errors))
        except Exception:
            pass
    return table


@functools.cache
def _asyncpg_sqlstates() -> dict[str, str]:
    try:
        import asyncpg.exceptions

        return _sqlstates_of_classes(asyncpg.exceptions)
    except Exception:
        return {}


def _sqlstates_of_classes(module: object) -> dict[str, str]:
    """Class name -> SQLSTATE for a driver module whose classes carry ``sqlstate``."""
    table: dict[str, str] = {}
    for value in vars(module).values():
        code = getattr(value, "sqlstate", None)
        if isinstance(value, type) and isinstance(code, str) and len(code) == 5:
            table.setdefault(value.__name__, code)
    return table


_SQLALCHEMY_PREFIX: Final = re.compile(r"\s*\(([\w.]+)\)\s*")
_MYSQL_ERRNO_MESSAGE: Final = re.compile(r"\(?\s*(\d{3,5})\s*[,:)]")
_REDIS_MODULE_CLASSES: Final = frozenset(
    {"ConnectionError", "TimeoutError", "AuthenticationError", "BusyLoadingError"}
)
_CONNECTION_MESSAGES: Final = (
    "server closed the connection",
    # libpq over TLS reports a terminated backend as this, not "server closed ...".
    "ssl connection has been closed unexpectedly",
    "connection already closed",
    "could not connect",
    "connection refused",
    "terminating connection",
    "connection is closed",
    "connection was closed",
    "lost connection",
    "gone away",
)


def _event_facts(exception_type: str, message: str, depth: int) -> ErrorFacts | None:
    module, _, name = exception_type.rpartition(".")
    root = module.split(".")[0]

    if root == "sqlalchemy":
        wrapped = _SQLALCHEMY_PREFIX.match(message)
        if wrapped and depth < 2:
            return _event_facts(wrapped.group(1), message[wrapped.end() :], depth + 1)
        return None

    if root in ("psycopg2", "psycopg") or (not module and name in _psycopg_sqlstates()):
        code = _psycopg_sqlstates().get(name)
        if code is not None:
            return _facts(code, category_of_sqlstate(code), exception_type)
        lowered = message.lower()
        if name in ("InterfaceError", "OperationalError") and (
            name == "InterfaceError" or any(m in lowered for m in _CONNECTION_MESSAGES)
        ):
            return _facts(None, CONNECTION, exception_type)
        return _facts(None, OTHER, exception_type) if root else None

    if root == "asyncpg":
        code = _asyncpg_sqlstates().get(name)
        if code is not None:
            return _facts(code, category_of_sqlstate(code), exception_type)
        if "InterfaceError" in name or "Connection" in name:
            return _facts(None, CONNECTION, exception_type)
        return _facts(None, OTHER, exception_type)

    if root == "sqlite3":
        errorname = _sqlite_name_from_message(message)
        return _facts(errorname, category_of_sqlite(errorname, message), exception_type)

    if root == "pg8000":
        code = driver_errors.pg8000_message_sqlstate(message)
        if code is not None:
            return _facts(code, category_of_sqlstate(code), exception_type)
        if name in ("InterfaceError", "OperationalError"):
            return _facts(None, CONNECTION, exception_type)
        return _facts(None, OTHER, exception_type)

    if root in ("pymysql", "MySQLdb", "mysql", "mariadb"):
        match = _MYSQL_ERRNO_MESSAGE.match(message) or (
            driver_errors.MYSQL_CONNECTOR_MESSAGE.match(message)
        )
        if match:
            errno = int(match.group(1))
            return _facts(str(errno), category_of_mysql_errno(errno), exception_type)
        if name in ("InterfaceError", "OperationalError"):
            return _facts(None, CONNECTION, exception_type)
        return _facts(None, OTHER, exception_type)

    if root in ("pymongo", "botocore"):
        from otel_db.nosql import errors as nosql_errors

        if root == "pymongo":
            return nosql_errors.pymongo_event_facts(name, message, exception_type)
        return nosql_errors.botocore_event_facts(name, message, exception_type)

    if root == "redis":
        if name == "WatchError":
            return _facts(None, SERIALIZATION_FAILURE, exception_type)
        if name in _REDIS_MODULE_CLASSES:
            return _facts(None, CONNECTION, exception_type)
        return _redis_facts_from_message(message, exception_type)
    return None


def classify_exception_event(exception_type: str, message: str) -> ErrorFacts | None:
    """Facts from a span's exception event (``exception.type``, ``exception.message``).

    ``None`` when the type is not a database error this module recognises.
    Never raises.
    """
    try:
        return _event_facts(str(exception_type), str(message or ""), 0)
    except Exception:
        _logger.debug("otel_db: could not classify an exception event", exc_info=True)
        return None


# --- message scrubbing ------------------------------------------------------------

_SCRUB_INPUT_CHARS: Final = 4 * MAX_MESSAGE_CHARS


def scrub_error_message(message: str, system: str | Dialect | None = None) -> str:
    """``message`` with values removed and meaning kept, at most 1,000 characters.

    Read by structure (see :mod:`otel_db.sql.scrub`): quoted values become ``?``
    (names after words such as ``key``, ``constraint``, ``table`` or ``column``
    stay), ``(col)=(value)`` groups become ``(col)=(?)``, PostgreSQL's ``CONTEXT``
    keeps its words and hides its data, a statement echoed after ``LINE 1:``,
    ``QUERY:`` or in SQLAlchemy's ``[SQL: ...]`` is replaced by its sanitized form
    (``system``, the span's ``db.system.name``, picks the dialect), and SQLAlchemy's
    ``[parameters: ...]`` by ``[parameters: ?]``. Never raises.
    """
    try:
        dialect = system if isinstance(system, Dialect) else dialect_for_system(system)
        text = str(message)[:_SCRUB_INPUT_CHARS]
        cut = len(str(message)) > _SCRUB_INPUT_CHARS
        if cut:
            # A value may have been cut in half: never let its tail survive.
            text = text[: text.rfind("\n")] if "\n" in text else ""
        scrubbed = scrub(text, dialect).rstrip()
        return scrubbed[:MAX_MESSAGE_CHARS]
    except Exception:
        _logger.debug("otel_db: could not scrub an error message", exc_info=True)
        return "?"
