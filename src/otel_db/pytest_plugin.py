"""pytest fixtures that assert on the database statements a block of code runs.

``assert_db_queries(n)`` fails when the block ran other than ``n`` statements (at most
``n`` with ``exact=False``), listing the statements; ``assert_no_n_plus_one()`` fails when
the otel_db N+1 detector flagged the block. Installed with otel_db (``pytest11`` entry
point); nothing is set up unless a test uses one of the fixtures, and then before the
test body runs, so the connections it opens are instrumented.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from otel_db.testing import QueryCapture, ensure_tracing


@contextmanager
def _assert_queries(
    expected: int, *, exact: bool = True, info: str | None = None
) -> Iterator[QueryCapture]:
    with QueryCapture("assert_db_queries") as captured:
        yield captured
    ok = captured.count == expected if exact else captured.count <= expected
    if not ok:
        wanted = f"{expected}" if exact else f"at most {expected}"
        message = f"expected {wanted} database statements, {captured.count} ran"
        if info:
            message += f" ({info})"
        pytest.fail(f"{message}:\n{captured.listing()}", pytrace=False)


@contextmanager
def _assert_no_n_plus_one(info: str | None = None) -> Iterator[QueryCapture]:
    with QueryCapture("assert_no_n_plus_one") as captured:
        yield captured
    if captured.n_plus_one:
        message = (
            f"N+1 detected: {captured.n_plus_one['query']!s} ran "
            f"{captured.n_plus_one['count']} times"
        )
        if info:
            message += f" ({info})"
        pytest.fail(f"{message}; statements:\n{captured.listing()}", pytrace=False)


@pytest.fixture
def assert_db_queries() -> Callable[..., contextmanager]:
    """``with assert_db_queries(3): ...`` (``exact=False`` for an upper bound, ``info=``)."""
    ensure_tracing()  # before the test body, so the connections it opens are instrumented
    return _assert_queries


@pytest.fixture
def assert_no_n_plus_one() -> Callable[..., contextmanager]:
    """``with assert_no_n_plus_one(): ...`` fails if the block has an N+1 run."""
    ensure_tracing()
    return _assert_no_n_plus_one
