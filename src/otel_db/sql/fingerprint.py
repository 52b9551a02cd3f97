"""A short, stable hash of a statement's shape (``otel_db.query.fingerprint``)."""

from __future__ import annotations

import hashlib
import logging
from typing import Final

from otel_db.sql.dialects import Dialect, dialect_for_system
from otel_db.sql.sanitize import MAX_STATEMENT_CHARS, normalize_tokens
from otel_db.sql.tokenizer import PLACEHOLDER, PLACEHOLDER_RUN, Token, tokenize

_logger = logging.getLogger(__name__)

FINGERPRINT_HEX_CHARS: Final = 16


def _digest(normalized: str) -> str:
    return hashlib.blake2b(normalized.encode("utf-8", "replace"), digest_size=8).hexdigest()


def fingerprint_tokens(tokens: list[Token], *, sanitized: bool = False) -> str:
    """Fingerprint already tokenized SQL (see :func:`fingerprint`).

    With ``sanitized=True``, ``tokens`` is the output of ``normalize_tokens`` (the
    sanitized text's tokens): shorter, and with nothing left to hide unless it has
    placeholders.
    """
    kinds = {token.kind for token in tokens}
    if sanitized and PLACEHOLDER not in kinds and PLACEHOLDER_RUN not in kinds:
        normalized = tokens
    else:
        normalized = normalize_tokens(tokens, hide_placeholders=True)
    # Words are case-insensitive: their upper-cased form stands for them.
    return _digest(" ".join([token.upper or token.text for token in normalized]))


def fingerprint(text: str, system: str | Dialect | None = None) -> str:
    """16 lowercase hex chars, equal for statements that differ only in literals,
    placeholders, whitespace, comments, keyword/identifier case or IN-list length.
    ``system`` is the span's ``db.system.name``. Never raises."""
    try:
        dialect = system if isinstance(system, Dialect) else dialect_for_system(system)
        return fingerprint_tokens(tokenize(text, dialect))
    except Exception:
        _logger.debug("otel_db: could not fingerprint a statement", exc_info=True)
        return _digest(text[:MAX_STATEMENT_CHARS])


def fingerprint_redis_command(command_name: str) -> str:
    """Fingerprint of a Redis command: depends only on the command name."""
    return _digest("redis " + command_name.upper())
