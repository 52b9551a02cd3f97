"""pytest plugin of the traced run (``PYTEST_PLUGINS``): keeps otel_db's listeners on.

SQLAlchemy's own suite clears the class-level ``Engine``/``Connection``/``Pool`` event
registries in some teardowns (``Engine.dispatch._clear()``), which would remove
otel_db's listeners for the rest of the run; an application never does that. After
every test the listeners that are gone are put back, so every later test is traced.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest


def _ensure(target: Any, name: str, fn: Any, **kwargs: Any) -> None:
    from sqlalchemy import event

    if not event.contains(target, name, fn):
        event.listen(target, name, fn, **kwargs)


def reinstall_sqlalchemy_listeners() -> None:
    if "sqlalchemy" not in sys.modules:
        return
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor
    from otel_db.pools import sqlalchemy_pool
    from otel_db.transactions import sqlalchemy_transactions

    listener = SQLAlchemyStatementInstrumentor._listener
    if listener is not None:
        _ensure(Engine, "before_cursor_execute", listener.before_cursor_execute, retval=True)
        _ensure(Engine, "after_cursor_execute", listener.after_cursor_execute)
        _ensure(Engine, "handle_error", listener.handle_error)
    transactions = sqlalchemy_transactions._listener
    if transactions is not None:
        for name in sqlalchemy_transactions._EVENTS:
            _ensure(Engine, name, getattr(transactions, name))
    if sqlalchemy_pool._installed:
        _ensure(Pool, "checkin", sqlalchemy_pool._checked_in)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield
    reinstall_sqlalchemy_listeners()
