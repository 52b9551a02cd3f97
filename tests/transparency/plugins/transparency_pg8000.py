"""pytest plugin of both runs of the pg8000 suite: the database to use.

pg8000's conftests build their connect arguments (the ``db_kwargs`` fixture) from
``PGHOST``, ``PGPORT`` and ``PGPASSWORD`` only, so every test would use the database
named after the user. This adds ``PGDATABASE`` to that dict when the fixture is made;
tests that replace ``database`` themselves (a missing one, a unicode name) still do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Iterator[None]:
    outcome = yield
    database = os.environ.get("PGDATABASE")
    if fixturedef.argname != "db_kwargs" or not database:
        return
    kwargs = outcome.get_result()
    if isinstance(kwargs, dict):
        kwargs.setdefault("database", database)
