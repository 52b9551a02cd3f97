"""A contrib DB-API integration with otel_db's transactions, for drivers that have no
instrumentor of their own here (pg8000, mysql-connector).

contrib's ``dbapi.wrap_connect`` makes the statement spans (text, operation, server and
database attributes, duration and returned-rows metrics; made by otel_db's
:mod:`~otel_db.instrumentation.lean_statement` tracer where that is exactly contrib's
span, by contrib's ``CursorTracer`` otherwise); the proxies here add what
psycopg2 and sqlite3 get from their own modules: the transaction the driver opens when
autocommit is off (a span from the first statement to ``commit()`` / ``rollback()`` /
``close()`` / ``with conn:``), parent of its statements, with the outcome on each. Under
SQLAlchemy (instrumentation suppressed) statements go straight to the driver.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Mapping
from types import MethodType
from typing import Any

from opentelemetry.instrumentation.dbapi import (
    CursorTracer,
    DatabaseApiIntegration,
    ObjectProxy,
    TracedConnectionProxy,
    TracedCursorProxy,
)
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from otel_db import attributes as attr
from otel_db.instrumentation.lean_statement import LeanStatementTracer, usable
from otel_db.metrics.export_state import contrib_integration_options
from otel_db.metrics.interned_histogram import intern_contrib_histograms
from otel_db.settings import current_settings
from otel_db.transactions import dbapi_transactions as tx

#: Connection -> its autocommit setting as last set through otel_db's connection proxy
#: (or known from the connect call). mysql-connector's ``autocommit`` getter asks the
#: server (``SELECT @@session.autocommit``): read per statement it cost a round trip.
_AUTOCOMMIT: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def remember_autocommit(connection: Any, value: Any) -> None:
    # (not weakly referenceable: the getter is asked instead)
    with contextlib.suppress(TypeError):
        _AUTOCOMMIT[connection] = bool(value)


def autocommit_off(connection: Any) -> bool:
    """pg8000 and mysql-connector: a transaction is open from the first statement on
    while ``autocommit`` is false (their default)."""
    try:
        known = _AUTOCOMMIT.get(connection)
    except TypeError:
        known = None
    if known is not None:
        return not known
    return not getattr(connection, "autocommit", False)


class DriverCursorProxy(TracedCursorProxy):
    """contrib's traced cursor, telling the transaction tracker about each statement."""

    def __init__(self, cursor: Any, integration: DriverIntegration, connection: Any) -> None:
        ObjectProxy.__init__(self, cursor)
        self._self_integration = integration
        self._self_cursor_tracer = CursorTracer(integration)
        self._self_connection = connection

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        if not is_instrumentation_enabled():
            return self.__wrapped__.execute(*args, **kwargs)
        return self._otel_db_run(super().execute, args, kwargs)

    def executemany(self, *args: Any, **kwargs: Any) -> Any:
        if not is_instrumentation_enabled():
            return self.__wrapped__.executemany(*args, **kwargs)
        return self._otel_db_run(super().executemany, args, kwargs)

    @property
    def callproc(self) -> Callable[..., Any]:
        # callproc is an optional DB-API extension (pg8000's legacy cursor has none):
        # reading the driver's own first keeps ``hasattr(cursor, "callproc")`` and the
        # AttributeError exactly as without the proxy; where it exists it is a bound
        # method, as the driver's is (DB-API test suites check ``inspect.ismethod``).
        self.__wrapped__.callproc  # noqa: B018
        return MethodType(DriverCursorProxy._otel_db_callproc, self)

    def _otel_db_callproc(self, *args: Any, **kwargs: Any) -> Any:
        if not is_instrumentation_enabled():
            return self.__wrapped__.callproc(*args, **kwargs)
        return self._otel_db_run(super().callproc, args, kwargs)

    def _otel_db_run(self, method: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        integration = self._self_integration
        connection = self._self_connection
        tokens = tx.enter_statement(
            connection,
            integration.system_attributes(),
            integration.opens_transaction,
            current_settings().transaction_spans,
        )
        try:
            lean = integration.lean_tracer()
            if lean is not None:  # contrib's span, made by otel_db's lean tracer
                cursor = self.__wrapped__
                return lean.traced_execution(cursor, getattr(cursor, method.__name__), args, kwargs)
            return method(*args, **kwargs)
        finally:
            tx.exit_statement(tokens, connection, False)


class DriverConnectionProxy(tx.EndsTransactions, TracedConnectionProxy):
    """contrib's traced connection, ending the tracked transaction with the driver's."""

    def __init__(self, connection: Any, integration: DriverIntegration) -> None:
        super().__init__(connection, integration)
        self._self_otel_db_integration = integration  # (not contrib's private field)

    @property
    def autocommit(self) -> Any:
        return self.__wrapped__.autocommit

    @autocommit.setter
    def autocommit(self, value: Any) -> None:
        self.__wrapped__.autocommit = value
        remember_autocommit(self.__wrapped__, value)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return DriverCursorProxy(
            self.__wrapped__.cursor(*args, **kwargs),
            self._self_otel_db_integration,
            self.__wrapped__,
        )

    def _otel_db_exit_outcome(self, exc_type: Any) -> str:
        # pg8000 and mysql-connector close the connection at the end of ``with``
        # without committing: what was open is rolled back by the server.
        return self._self_otel_db_integration.exit_outcome(exc_type)


class DriverIntegration(DatabaseApiIntegration):
    """contrib's integration with the connect-time facts read from the connect call
    (``connect_facts``) when the connection object does not expose them."""

    #: (args, kwargs) of the connect call -> {"database", "host", "port", "user"}.
    connect_facts: Callable[[tuple[Any, ...], Mapping[str, Any]], dict[str, Any]] | None = None
    #: The connect call's keywords -> the new connection's autocommit setting, where the
    #: driver's getter costs a round trip and the keywords tell (None: ask the getter).
    autocommit_at_connect: Callable[[Mapping[str, Any]], bool | None] | None = None
    opens_transaction: Callable[[Any], bool] = staticmethod(autocommit_off)  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **contrib_integration_options(kwargs))
        intern_contrib_histograms(self)
        self._system: dict[str, Any] | None = None
        self._lean: LeanStatementTracer | bool | None = False  # False: not decided yet

    def lean_tracer(self) -> LeanStatementTracer | None:
        """This connection's lean statement tracer, or None where contrib's own tracer
        must make the spans (see :mod:`otel_db.instrumentation.lean_statement`)."""
        lean = self._lean
        if lean is False:
            lean = self._lean = LeanStatementTracer(CursorTracer(self)) if usable(self) else None
        return lean  # type: ignore[return-value]

    def exit_outcome(self, exc_type: Any) -> str:
        return attr.OUTCOME_ROLLED_BACK

    def system_attributes(self) -> dict[str, Any]:
        if self._system is None:
            system: dict[str, Any] = {attr.DB_SYSTEM_NAME: self.database_system}
            if self.database:
                system[attr.DB_NAMESPACE] = self.database
            system.update(
                {k: v for k, v in self.span_attributes.items() if k.startswith("server.")}
            )
            self._system = system
        return self._system

    def wrapped_connection(
        self, connect_method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[Any, Any]
    ) -> DriverConnectionProxy:
        connection = connect_method(*args, **kwargs)
        if self.connect_facts is not None:
            self.get_connection_attributes(_Facts(self.connect_facts(args, kwargs)))
        else:
            self.get_connection_attributes(connection)
        if self.autocommit_at_connect is not None:
            known = self.autocommit_at_connect(kwargs)
            if known is not None:
                remember_autocommit(connection, known)
        return DriverConnectionProxy(connection, self)


class _Facts:
    """An object with the attributes contrib's ``get_connection_attributes`` reads."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        self.__dict__.update({k: v for k, v in facts.items() if v is not None})
