"""One contrib ``DatabaseApiIntegration`` per instrumentation, copied per connection.

contrib's ``dbapi.wrap_connect`` builds a new integration on every ``connect()``, and
its constructor asks for a tracer and a meter each time: the SDK then builds a
deprecated ``InstrumentationInfo`` per connection (a ``DeprecationWarning`` that test
suites run with warnings as errors, or that patch ``warnings.warn``, see as their own),
on top of the wasted work on every connect. :class:`SharedIntegrationFactory` is
passed as ``db_api_integration_factory``: the integration is built once, when the
instrumentation is installed (:func:`wrap_connect_shared`), so the SDK's ``get_tracer``
never runs inside the application's code; each connection gets a copy of it with its
own containers, which ``get_connection_attributes`` then fills for that connection. The
tracer, the meter and the histograms are the instrumentation's, shared.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from opentelemetry.instrumentation import dbapi


def per_connection_copy(prototype: Any) -> Any:
    """A shallow copy of ``prototype`` whose dicts, lists and sets are its own.

    Per-connection facts (``connection_props``, ``span_attributes``, the commenter
    data, ...) live in such containers; copying every one of them, whatever its name,
    keeps a contrib release that adds another one from sharing it across connections.
    """
    clone = copy.copy(prototype)
    state = vars(clone)
    for name, value in list(state.items()):
        if type(value) in (dict, list, set):
            state[name] = copy.copy(value)
    return clone


class SharedIntegrationFactory:
    """``db_api_integration_factory`` for ``dbapi.wrap_connect``: one integration, copied.

    ``wrap_connect`` calls its factory with the same arguments on every connect (they
    are fixed when the instrumentation is installed), so the first call's build serves
    them all.
    """

    def __init__(self, integration_class: type) -> None:
        self._integration_class = integration_class
        self._prototype: Any = None
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        prototype = self._prototype
        if prototype is None:
            with self._lock:
                if self._prototype is None:
                    self._prototype = self._integration_class(*args, **kwargs)
                prototype = self._prototype
        return per_connection_copy(prototype)


def wrap_connect_shared(
    name: str,
    module: Any,
    method: str,
    database_system: str,
    connection_attributes: dict[str, Any] | None,
    integration_class: type,
    **options: Any,
) -> SharedIntegrationFactory:
    """``dbapi.wrap_connect`` with one integration of ``integration_class``, built now
    with the arguments ``wrap_connect`` will pass at each connect."""
    factory = SharedIntegrationFactory(integration_class)
    factory(
        name,
        database_system,
        connection_attributes=connection_attributes,
        connect_module=module,
        **options,
    )
    dbapi.wrap_connect(
        name,
        module,
        method,
        database_system,
        connection_attributes,
        db_api_integration_factory=factory,
        **options,
    )
    return factory


__all__ = ["SharedIntegrationFactory", "per_connection_copy", "wrap_connect_shared"]
