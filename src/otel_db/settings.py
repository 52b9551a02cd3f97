"""Settings parsed once from the environment into a frozen, typed object.

Parsing is lenient: a bad value never stops the application. It is reported by one
warning naming the variable, the value and the default used instead.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from otel_db import environment_variables as env

_logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})

DEFAULT_SERVICE_NAME = "unknown_service"

_OWN_PREFIX = "OTEL_PYTHON_DB_"


def known_variable_names() -> frozenset[str]:
    """Every ``OTEL_PYTHON_DB_*`` variable otel_db reads (environment_variables.py)."""
    return frozenset(
        name for name in vars(env) if name.startswith(_OWN_PREFIX) and getattr(env, name) == name
    )


@dataclass(frozen=True)
class Settings:
    """Everything otel_db reads from ``OTEL_*`` variables, after validation."""

    slow_query_threshold_ms: float = 500.0
    n_plus_one_threshold: int = 5
    sanitize_queries: bool = True
    capture_query_text: bool = True
    capture_parameters: bool = False
    explain_slow_queries: bool = False
    sqlcommenter: bool = False
    transaction_spans: bool = True
    pool_attributes: bool = True
    shutdown_timeout_ms: float = 5000.0
    sdk_disabled: bool = False
    service_name: str = DEFAULT_SERVICE_NAME
    disabled_instrumentations: frozenset[str] = field(default_factory=frozenset)
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse settings from ``environ`` (default ``os.environ``), warning on bad values."""
        return _Parser(os.environ if environ is None else environ).settings()


class _Parser:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._warnings: list[str] = []

    def settings(self) -> Settings:
        defaults = Settings()
        parsed = Settings(
            slow_query_threshold_ms=self._number(
                env.OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS,
                defaults.slow_query_threshold_ms,
                float,
                minimum=0.0,
            ),
            n_plus_one_threshold=self._number(
                env.OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD,
                defaults.n_plus_one_threshold,
                int,
                minimum=0,
            ),
            sanitize_queries=self._bool(
                env.OTEL_PYTHON_DB_SANITIZE_QUERIES, defaults.sanitize_queries
            ),
            capture_query_text=self._bool(
                env.OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT, defaults.capture_query_text
            ),
            capture_parameters=self._bool(
                env.OTEL_PYTHON_DB_CAPTURE_PARAMETERS, defaults.capture_parameters
            ),
            explain_slow_queries=self._bool(
                env.OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES, defaults.explain_slow_queries
            ),
            sqlcommenter=self._bool(env.OTEL_PYTHON_DB_SQLCOMMENTER, defaults.sqlcommenter),
            transaction_spans=self._bool(
                env.OTEL_PYTHON_DB_TRANSACTION_SPANS, defaults.transaction_spans
            ),
            pool_attributes=self._bool(
                env.OTEL_PYTHON_DB_POOL_ATTRIBUTES, defaults.pool_attributes
            ),
            shutdown_timeout_ms=self._number(
                env.OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS,
                defaults.shutdown_timeout_ms,
                float,
                minimum=0.0,
            ),
            sdk_disabled=self._bool("OTEL_SDK_DISABLED", False),
            service_name=self._service_name(),
            disabled_instrumentations=self._name_list("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"),
        )
        self._unknown_names()
        return _replace_warnings(parsed, tuple(self._warnings))

    def _unknown_names(self) -> None:
        """One warning per ``OTEL_PYTHON_DB_*`` name otel_db does not know (a typo would
        otherwise leave the default in force without a word)."""
        known = known_variable_names()
        for name in sorted(self._environ):
            if not name.startswith(_OWN_PREFIX) or name in known:
                continue
            # Compared without the shared prefix, which would make any name look close.
            suffixes = sorted(known_name[len(_OWN_PREFIX) :] for known_name in known)
            close = difflib.get_close_matches(name[len(_OWN_PREFIX) :], suffixes, n=1, cutoff=0.7)
            hint = f" (did you mean {_OWN_PREFIX}{close[0]}?)" if close else ""
            message = f"otel_db: {name} is not an otel_db setting{hint}; it is ignored"
            _logger.warning(message)
            self._warnings.append(message)

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def _warn(self, name: str, value: str, default: object, why: str) -> None:
        message = f"otel_db: {name}={value!r} is not valid ({why}); using the default {default!r}"
        _logger.warning(message)
        self._warnings.append(message)

    def _bool(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self._warn(name, raw, default, "expected true or false")
        return default

    def _number(self, name: str, default: _T, kind: Callable[[str], _T], *, minimum: float) -> _T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            self._warn(
                name, raw, default, f"expected {'an integer' if kind is int else 'a number'}"
            )
            return default
        if value != value or value < minimum or value in (float("inf"),):  # NaN, negative, inf
            self._warn(name, raw, default, f"expected a finite value >= {minimum:g}")
            return default
        return value

    def _service_name(self) -> str:
        name = self._raw("OTEL_SERVICE_NAME")
        if name:
            return name
        for pair in (self._raw("OTEL_RESOURCE_ATTRIBUTES") or "").split(","):
            key, _, value = pair.partition("=")
            if key.strip() == "service.name" and value.strip():
                return value.strip()
        return DEFAULT_SERVICE_NAME

    def _name_list(self, name: str) -> frozenset[str]:
        raw = self._raw(name) or ""
        return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _replace_warnings(settings: Settings, warnings: tuple[str, ...]) -> Settings:
    return replace(settings, warnings=warnings)


_current: Settings | None = None
_current_lock = threading.Lock()


def current_settings() -> Settings:
    """The process's settings, parsed from ``os.environ`` once so each warning shows once."""
    global _current
    found = _current  # set once: read without the lock on the hot path
    if found is not None:
        return found
    with _current_lock:
        if _current is None:
            _current = Settings.from_env()
        return _current


def forget_current_settings() -> None:
    """Parse the environment again on the next :func:`current_settings` (for tests)."""
    global _current
    with _current_lock:
        _current = None
