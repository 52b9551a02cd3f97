"""The one entry point the span pipeline calls for statement text."""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from otel_db.sql.dialects import BY_NAME, NAME_BY_SYSTEM, Dialect
from otel_db.sql.fingerprint import fingerprint, fingerprint_redis_command, fingerprint_tokens
from otel_db.sql.sanitize import FALLBACK_TEXT, normalize_tokens, render_sanitized
from otel_db.sql.summary import MAX_SUMMARY_CHARS, operation_and_targets
from otel_db.sql.tokenizer import tokenize

_logger = logging.getLogger(__name__)

#: Distinct statements remembered by :func:`analyze_statement`: up to CACHE_SIZE
#: texts of at most SMALL_STATEMENT_CHARS characters per dialect in use (an entry
#: keeps the text and its shape: a few KB at most), and longer ones in a cache bounded in
#: bytes: it keys them by hash and length, not by text, and keeps at most
#: LARGE_CACHE_SIZE shapes holding LARGE_CACHE_BYTES characters of results in all.
CACHE_SIZE: Final = 2048
SMALL_STATEMENT_CHARS: Final = 1024
LARGE_CACHE_SIZE: Final = 64
LARGE_CACHE_BYTES: Final = 1024 * 1024
_MAX_REDIS_ARGUMENTS: Final = 32 * 1024
_MAX_SYSTEMS: Final = 64  # db.system.name values remembered for the cache lookup


@dataclass(frozen=True, slots=True)
class StatementShape:
    """What otel_db records about a statement's text."""

    sanitized_text: str  # db.query.text
    operation: str | None  # db.operation.name, e.g. "SELECT"
    summary: str | None  # db.query.summary, e.g. "SELECT users"
    collection: str | None  # db.collection.name, only when exactly one table is targeted
    fingerprint: str  # otel_db.query.fingerprint, 16 lowercase hex chars


def _analyze(text: str, dialect_name: str) -> StatementShape:
    tokens = tokenize(text, BY_NAME[dialect_name])
    shape = operation_and_targets(tokens)
    sanitized = normalize_tokens(tokens)
    return StatementShape(
        sanitized_text=render_sanitized(sanitized),
        operation=shape.operation,
        summary=shape.summary,
        collection=shape.collection,
        fingerprint=fingerprint_tokens(sanitized, sanitized=True),
    )


# One LRU per dialect, keyed by the text alone: a single ``str`` argument is its own
# cache key (its hash is cached on the string), the cheapest lookup there is.
_small_caches: dict[str, Callable[[str], StatementShape]] = {
    name: functools.lru_cache(maxsize=CACHE_SIZE)(functools.partial(_analyze, dialect_name=name))
    for name in BY_NAME
}
_SMALL_CACHE_BY_SYSTEM: dict[object, Callable[[str], StatementShape]] = {
    None: _small_caches["unknown"],
    **{system: _small_caches[name] for system, name in NAME_BY_SYSTEM.items()},
}


def _shape_size(shape: StatementShape) -> int:
    return 64 + len(shape.sanitized_text) + len(shape.summary or "") + len(shape.collection or "")


class _LargeStatementCache:
    """LRU of shapes of long statements, bounded in entries and in result characters.

    Keys are ``(hash(text), len(text), dialect name)``: the text itself is never
    kept (a 1 MB statement costs its shape, not 1 MB). ``str`` caches its hash, so
    a repeated statement object is looked up without rehashing.
    """

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.chars = 0
        self._entries: OrderedDict[tuple[int, int, str], StatementShape] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int, str]) -> StatementShape | None:
        with self._lock:
            shape = self._entries.get(key)
            if shape is not None:
                self._entries.move_to_end(key)
            return shape

    def put(self, key: tuple[int, int, str], shape: StatementShape) -> None:
        size = _shape_size(shape)
        if size > self.max_chars:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.chars -= _shape_size(old)
            self._entries[key] = shape
            self.chars += size
            while len(self._entries) > self.max_entries or self.chars > self.max_chars:
                _, evicted = self._entries.popitem(last=False)
                self.chars -= _shape_size(evicted)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.chars = 0


_large_cache = _LargeStatementCache(LARGE_CACHE_SIZE, LARGE_CACHE_BYTES)


def _dialect_name(system: object) -> str:
    if isinstance(system, Dialect):
        return system.name if BY_NAME.get(system.name) is system else "unknown"
    if isinstance(system, str):
        return NAME_BY_SYSTEM.get(system, "unknown")
    return "unknown"


def analyze_statement(text: str, system: str | Dialect | None = None) -> StatementShape:
    """Sanitized text, operation, summary, collection and fingerprint of ``text``.

    ``system`` is the span's ``db.system.name``: it picks the dialect whose lexical
    rules apply (an unknown or missing system gets the union of all). Results are
    cached (LRU, see :data:`CACHE_SIZE`) per text and dialect, so a statement an
    application runs over and over is analysed once. Never raises.
    """
    try:
        if len(text) <= SMALL_STATEMENT_CHARS:
            try:
                return _SMALL_CACHE_BY_SYSTEM[system](text)
            except (KeyError, TypeError):  # a system not seen before, or not a str
                small = _small_caches[_dialect_name(system)]
                if type(system) is str and len(_SMALL_CACHE_BY_SYSTEM) < _MAX_SYSTEMS:
                    _SMALL_CACHE_BY_SYSTEM[system] = small
                return small(text)
        name = _dialect_name(system)
        key = (hash(text), len(text), name)
        shape = _large_cache.get(key)
        if shape is None:
            shape = _analyze(text, name)
            _large_cache.put(key, shape)
        return shape
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
        sanitized = " ".join([name] + ["?"] * min(argument_count, _MAX_REDIS_ARGUMENTS))
        return StatementShape(sanitized, name, name, None, fingerprint_redis_command(name))
    except Exception:
        _logger.debug("otel_db: could not analyze a redis command", exc_info=True)
        return StatementShape(FALLBACK_TEXT, None, None, None, fingerprint_redis_command(""))
