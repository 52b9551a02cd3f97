"""Bound parameters as span attributes (``OTEL_PYTHON_DB_CAPTURE_PARAMETERS``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from otel_db.attributes import DB_QUERY_PARAMETER_PREFIX

_logger = logging.getLogger(__name__)

MAX_PARAMETERS: Final = 32
MAX_VALUE_CHARS: Final = 256
REDACTED: Final = "[REDACTED]"

# A parameter whose name contains any of these (case-insensitive) is never shown.
SECRET_NAME_PARTS: Final = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "auth",
    "credential",
    "private_key",
    "privatekey",
    "session_key",
    "sessionkey",
    "session_id",
    "sessionid",
    "cookie",
    "access_key",
    "signature",
)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


#: ``db.query.parameter.<index>`` for positional parameters, made once.
_POSITIONAL_KEYS: Final = tuple(f"{DB_QUERY_PARAMETER_PREFIX}{i}" for i in range(MAX_PARAMETERS))

#: Named parameters: the attribute key and whether the name looks secret. Names repeat
#: from statement to statement, so the key and the verdict are remembered (bounded).
_MAX_REMEMBERED_NAMES: Final = 4_096
_named_keys: dict[str, tuple[str, bool]] = {}


def _named_key(name: str) -> tuple[str, bool]:
    found = _named_keys.get(name)
    if found is None:
        found = (DB_QUERY_PARAMETER_PREFIX + name, is_secret_name(name))
        if len(_named_keys) >= _MAX_REMEMBERED_NAMES:
            _named_keys.clear()
        _named_keys[name] = found
    return found


def _value_text(value: Any) -> str:
    try:
        text = value if type(value) is str else str(value)
    except Exception:
        return "?"
    return text[:MAX_VALUE_CHARS]


def capture_parameters(params: Any) -> dict[str, str]:
    """``{"db.query.parameter.<key>": value}`` for up to 32 parameters.

    Positional parameters are keyed by index (``0``, ``1``, ...), mapping parameters
    by name. Values are ``str()``'d and cut to 256 characters; parameters whose
    name looks secret are always ``"[REDACTED]"``. Anything else (``None``, a
    scalar, an unreadable object) gives ``{}``. Never raises.
    """
    try:
        kind = type(params)
        # Exact types first: the ABC checks below cost more than the capture itself.
        if kind is tuple or kind is list:
            return dict(
                zip(_POSITIONAL_KEYS, map(_value_text, params[:MAX_PARAMETERS]), strict=False)
            )
        if params is None or isinstance(params, (str, bytes, bytearray)):
            return {}
        captured: dict[str, str] = {}
        if kind is dict or isinstance(params, Mapping):
            for count, (key, value) in enumerate(params.items()):
                if count >= MAX_PARAMETERS:
                    break
                attribute, secret = _named_key(_value_text(key))
                captured[attribute] = REDACTED if secret else _value_text(value)
            return captured
        if isinstance(params, (list, tuple)):
            for key, value in zip(_POSITIONAL_KEYS, params[:MAX_PARAMETERS], strict=False):
                captured[key] = _value_text(value)
            return captured
        return {}
    except Exception:
        _logger.debug("otel_db: could not capture parameters", exc_info=True)
        return {}
