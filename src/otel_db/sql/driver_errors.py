"""Error codes of the drivers whose errors do not look like psycopg2's or pymysql's.

- pg8000 raises ``DatabaseError(fields)`` whose first argument is the server's error
  fields (``{'C': '23505', 'M': ..., 'D': ...}``): the SQLSTATE is ``fields['C']``, and
  the message an exception event keeps is that dict's repr.
- mysql-connector-python writes ``1062 (23000): Duplicate entry ...``: the MySQL error
  number, then the SQLSTATE in parentheses.

Used by :mod:`otel_db.sql.errors`; nothing here raises.
"""

from __future__ import annotations

import re
from typing import Final

_PG8000_CODE: Final = re.compile(r"""['"]C['"]\s*:\s*['"]([0-9A-Z]{5})['"]""")
#: ``1062 (23000): Duplicate entry ...`` (mysql-connector), errno then SQLSTATE.
MYSQL_CONNECTOR_MESSAGE: Final = re.compile(r"\s*(\d{3,5}) \([0-9A-Z]{5}\)(?::|$)")


def pg8000_sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a pg8000 error object, or None."""
    if not (type(exc).__module__ or "").startswith("pg8000"):
        return None
    args = getattr(exc, "args", ())
    fields = args[0] if args else None
    code = fields.get("C") if isinstance(fields, dict) else None
    return code if isinstance(code, str) and len(code) == 5 else None


def pg8000_message_sqlstate(message: str) -> str | None:
    """The SQLSTATE in a pg8000 error message (the repr of its error fields), or None."""
    found = _PG8000_CODE.search(message[:2000])
    return found.group(1) if found else None
