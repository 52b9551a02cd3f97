"""The one entry point the span pipeline calls for statement text."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Final

from otel_db.sql.fingerprint import fingerprint, fingerprint_redis_command, fingerprint_tokens
from otel_db.sql.sanitize import FALLBACK_TEXT, MAX_STATEMENT_CHARS, normalize_tokens, render
from otel_db.sql.summary import MAX_SUMMARY_CHARS, operation_and_targets
from otel_db.sql.tokenizer import tokenize

_logger = logging.getLogger(__name__)

#: Distinct statement texts remembered by :func:`analyze_statement`: up to
#: CACHE_SIZE statements of at most SMALL_STATEMENT_CHARS characters, and
#: LARGE_CACHE_SIZE longer ones, so the caches hold at most a few MB whatever the
#: application sends (a cached entry keeps the text and its sanitized form).
CACHE_SIZE: Final = 2048
SMALL_STATEMENT_CHARS: Final = 1024
LARGE_CACHE_SIZE: Final = 64


@dataclass(frozen=True, slots=True)
class StatementShape:
    """What otel_db records about a statement's text."""

    sanitized_text: str  # db.query.text
    operation: str | None  # db.operation.name, e.g. "SELECT"
    summary: str | None  # db.query.summary, e.g. "SELECT users"
    collection: str | None  # db.collection.name, only when exactly one table is targeted
    fingerprint: str  # otel_db.query.fingerprint, 16 lowercase hex chars


def _analyze(text: str) -> StatementShape:
    tokens = tokenize(text[:MAX_STATEMENT_CHARS])
    shape = operation_and_targets(tokens)
    sanitized = normalize_tokens(tokens)
    return StatementShape(
        sanitized_text=render(sanitized),
        operation=shape.operation,
        summary=shape.summary,
        collection=shape.collection,
        fingerprint=fingerprint_tokens(sanitized, sanitized=True),
    )


_analyze_small = functools.lru_cache(maxsize=CACHE_SIZE)(_analyze)
_analyze_large = functools.lru_cache(maxsize=LARGE_CACHE_SIZE)(_analyze)


def analyze_statement(text: str) -> StatementShape:
    """Sanitized text, operation, summary, collection and fingerprint of ``text``.

    Results are cached (LRU, see :data:`CACHE_SIZE`) by the exact text, so a
    statement an application runs over and over is analysed once. Never raises.
    """
    try:
        if len(text) <= SMALL_STATEMENT_CHARS:
            return _analyze_small(text)
        return _analyze_large(text)
    except Exception:
        _logger.debug("otel_db: could not analyze a statement", exc_info=True)
        try:
            digest = fingerprint(str(text))
        except Exception:
            digest = "0" * 16
        return StatementShape(FALLBACK_TEXT, None, None, None, digest)


def analyze_redis_command(command_text: str) -> StatementShape:
    """Shape of a Redis command line such as ``GET user:42`` or ``SET ? ?``.

    The operation and the summary are the command name (upper case); every
    argument becomes ``?``; the fingerprint depends on the command name alone, so
    GETs of different keys share one fingerprint. Never raises.
    """
    try:
        if isinstance(command_text, bytes):
            command_text = command_text.decode("utf-8", "replace")
        words = ("" if command_text is None else str(command_text)).split(None, 1)
        if not words:
            return StatementShape("", None, None, None, fingerprint_redis_command(""))
        name = words[0].upper()[:MAX_SUMMARY_CHARS]
        argument_count = len(words[1].split()) if len(words) > 1 else 0
        sanitized = " ".join([name] + ["?"] * min(argument_count, MAX_STATEMENT_CHARS // 2))
        return StatementShape(sanitized, name, name, None, fingerprint_redis_command(name))
    except Exception:
        _logger.debug("otel_db: could not analyze a redis command", exc_info=True)
        return StatementShape(FALLBACK_TEXT, None, None, None, fingerprint_redis_command(""))
