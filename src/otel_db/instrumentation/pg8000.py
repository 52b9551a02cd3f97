"""pg8000 (its DB-API interfaces, ``pg8000.connect`` and ``pg8000.dbapi.connect``, and
its native interface, see :mod:`otel_db.instrumentation.pg8000_native`).

contrib has no pg8000 instrumentation: contrib's generic DB-API wrapper makes the
statement spans, with otel_db's transactions (:mod:`otel_db.instrumentation.dbapi_driver`).
pg8000's connection does not keep its host, port or database, so they are read from the
connect call. pg8000 errors carry the server's SQLSTATE in their first argument (see
:mod:`otel_db.sql.driver_errors`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from opentelemetry.instrumentation import dbapi
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap

from otel_db.instrumentation import pg8000_native
from otel_db.instrumentation.dbapi_driver import DriverIntegration
from otel_db.version import __version__

_DATABASE_SYSTEM = "postgresql"
_CONNECTION_ATTRIBUTES = {"database": "database", "host": "host", "port": "port", "user": "user"}
_CONNECT_PARAMETERS = ("user", "host", "database", "port")


def _connect_facts(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    # connect(user, host="localhost", database=None, port=5432, password=None, ...)
    facts: dict[str, Any] = dict(zip(_CONNECT_PARAMETERS, args, strict=False))
    facts.update({k: kwargs[k] for k in _CONNECT_PARAMETERS if k in kwargs})
    if kwargs.get("unix_sock"):
        facts["host"], facts["port"] = kwargs["unix_sock"], None
    else:
        facts.setdefault("host", "localhost")
        facts.setdefault("port", 5432)
    facts["database"] = facts.get("database") or facts.get("user")
    return facts


class _Pg8000Integration(DriverIntegration):
    connect_facts = staticmethod(_connect_facts)  # type: ignore[assignment]


class Pg8000Instrumentor(BaseInstrumentor):
    """Statement spans, transactions and error codes for pg8000's DB-API and native
    interfaces."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("pg8000 >= 1.29",)

    def _instrument(self, **kwargs: Any) -> None:
        import pg8000
        import pg8000.dbapi

        for module in (pg8000, pg8000.dbapi):
            dbapi.wrap_connect(
                __name__,
                module,
                "connect",
                _DATABASE_SYSTEM,
                _CONNECTION_ATTRIBUTES,
                version=__version__,
                tracer_provider=kwargs.get("tracer_provider"),
                db_api_integration_factory=_Pg8000Integration,
                enable_commenter=kwargs.get("enable_commenter", False),
                commenter_options=kwargs.get("commenter_options", {}),
            )
        pg8000_native.install(kwargs.get("tracer_provider"), _connect_facts)

    def _uninstrument(self, **kwargs: Any) -> None:
        import pg8000
        import pg8000.dbapi

        for module in (pg8000, pg8000.dbapi):
            unwrap(module, "connect")
        pg8000_native.uninstall()
