"""Writing database attributes in the semantic-convention form the user chose.

Stable names by default (the distro opts into ``database``); the legacy or duplicated
names when the user's own ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for them. The contrib
helpers are reused so otel_db's spans and contrib's always agree.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from opentelemetry.instrumentation._semconv import (
    _get_schema_url_for_signal_types,
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _report_new,
    _set_db_name,
    _set_db_operation,
    _set_db_statement,
    _set_db_system,
    _set_http_net_peer_name_client,
    _set_http_peer_port_client,
    _StabilityMode,
)
from opentelemetry.util.types import AttributeValue


class DatabaseAttributeWriter:
    """Sets db.* and server.* attributes under the active stability mode."""

    def __init__(self) -> None:
        _OpenTelemetrySemanticConventionStability._initialize()
        self.db_mode: _StabilityMode = (
            _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
                _OpenTelemetryStabilitySignalType.DATABASE
            )
        )
        self.schema_url = _get_schema_url_for_signal_types(
            [_OpenTelemetryStabilitySignalType.DATABASE]
        )

    @property
    def reports_stable(self) -> bool:
        return _report_new(self.db_mode)

    def system(self, out: MutableMapping[str, AttributeValue], value: str) -> None:
        _set_db_system(out, value, self.db_mode)

    def namespace(self, out: MutableMapping[str, AttributeValue], value: str | None) -> None:
        if value:
            _set_db_name(out, value, self.db_mode)

    def statement(self, out: MutableMapping[str, AttributeValue], value: str) -> None:
        _set_db_statement(out, value, self.db_mode)

    def operation(self, out: MutableMapping[str, AttributeValue], value: str | None) -> None:
        if value:
            _set_db_operation(out, value, self.db_mode)

    def server(
        self, out: MutableMapping[str, AttributeValue], host: str | None, port: int | None
    ) -> None:
        # On a database span, server.* follows the database opt-in, not the HTTP one.
        if host:
            _set_http_net_peer_name_client(out, host, self.db_mode)
        if port:
            _set_http_peer_port_client(out, port, self.db_mode)
