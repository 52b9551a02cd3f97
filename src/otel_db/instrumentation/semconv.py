"""Writing database attributes in the semantic-convention form the user chose.

Stable names by default (the distro opts into ``database``); the legacy or duplicated
names when the user's own ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for them. On the
verified contrib versions (:mod:`otel_db.compat.verified`) contrib's private
``_semconv`` helpers are reused so otel_db's spans and contrib's always agree; on any
other version (or if contrib moved them) the same names are written by
:class:`_PublicWriter`, which reads the opt-in itself.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from otel_db.compat.verified import shortcut

try:  # contrib's private helpers: only used on verified contrib versions
    from opentelemetry.instrumentation import _semconv
except Exception:  # pragma: no cover - a contrib release without them
    _semconv = None  # type: ignore[assignment]

SHORTCUT = "contrib.semconv"
#: The schema contrib reports for the database opt-in (``Schemas.V1_25_0``) and without.
_STABLE_SCHEMA_URL = "https://opentelemetry.io/schemas/1.25.0"
_LEGACY_SCHEMA_URL = "https://opentelemetry.io/schemas/1.11.0"

#: (legacy name, stable name) per attribute the writer sets.
_SYSTEM = ("db.system", "db.system.name")
_NAMESPACE = ("db.name", "db.namespace")
_STATEMENT = ("db.statement", "db.query.text")
_OPERATION = ("db.operation", "db.operation.name")
_ADDRESS = ("net.peer.name", "server.address")
_PORT = ("net.peer.port", "server.port")


class _PublicWriter:
    """The names contrib writes for the database opt-in, from the environment alone."""

    def __init__(self) -> None:
        opt_in = {
            part.strip() for part in os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "").split(",")
        }
        if "database/dup" in opt_in:
            self.mode, self.old, self.new = "database/dup", True, True
        elif "database" in opt_in:
            self.mode, self.old, self.new = "database", False, True
        else:
            self.mode, self.old, self.new = "default", True, False
        self.schema_url = _STABLE_SCHEMA_URL if self.new else _LEGACY_SCHEMA_URL

    def set(self, out: MutableMapping[str, AttributeValue], names: tuple[str, str], value: Any):
        if self.old:
            out[names[0]] = value
        if self.new:
            out[names[1]] = value


class DatabaseAttributeWriter:
    """Sets db.* and server.* attributes under the active stability mode."""

    def __init__(self, *, use_contrib: bool | None = None) -> None:
        if use_contrib is None:
            use_contrib = _semconv is not None and shortcut(SHORTCUT)
        self._public: _PublicWriter | None = None
        if use_contrib:
            stability = _semconv._OpenTelemetrySemanticConventionStability
            stability._initialize()
            database = _semconv._OpenTelemetryStabilitySignalType.DATABASE
            self.db_mode: Any = stability._get_opentelemetry_stability_opt_in_mode(database)
            self.schema_url = _semconv._get_schema_url_for_signal_types([database])
        else:
            self._public = _PublicWriter()
            self.db_mode = self._public.mode
            self.schema_url = self._public.schema_url

    @property
    def reports_stable(self) -> bool:
        if self._public is not None:
            return self._public.new
        return _semconv._report_new(self.db_mode)

    def system(self, out: MutableMapping[str, AttributeValue], value: str) -> None:
        if self._public is not None:
            if value:
                self._public.set(out, _SYSTEM, value)
            return
        _semconv._set_db_system(out, value, self.db_mode)

    def namespace(self, out: MutableMapping[str, AttributeValue], value: str | None) -> None:
        if value:
            if self._public is not None:
                self._public.set(out, _NAMESPACE, value)
                return
            _semconv._set_db_name(out, value, self.db_mode)

    def statement(self, out: MutableMapping[str, AttributeValue], value: str) -> None:
        if self._public is not None:
            if value is not None:
                self._public.set(out, _STATEMENT, value)
            return
        _semconv._set_db_statement(out, value, self.db_mode)

    def operation(self, out: MutableMapping[str, AttributeValue], value: str | None) -> None:
        if value:
            if self._public is not None:
                self._public.set(out, _OPERATION, value)
                return
            _semconv._set_db_operation(out, value, self.db_mode)

    def server(
        self, out: MutableMapping[str, AttributeValue], host: str | None, port: int | None
    ) -> None:
        # On a database span, server.* follows the database opt-in, not the HTTP one.
        public = self._public
        if host:
            if public is not None:
                public.set(out, _ADDRESS, host)
            else:
                _semconv._set_http_net_peer_name_client(out, host, self.db_mode)
        if port:
            if public is not None:
                public.set(out, _PORT, int(port))
            else:
                _semconv._set_http_peer_port_client(out, port, self.db_mode)
