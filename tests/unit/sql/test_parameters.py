"""capture_parameters for OTEL_PYTHON_DB_CAPTURE_PARAMETERS."""

from __future__ import annotations

import pytest

from otel_db.attributes import DB_QUERY_PARAMETER_PREFIX as P
from otel_db.sql.parameters import MAX_PARAMETERS, REDACTED, capture_parameters


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ((1, "a", None), {f"{P}0": "1", f"{P}1": "a", f"{P}2": "None"}),
        ([2.5], {f"{P}0": "2.5"}),
        ({"id": 7, "name": "bob"}, {f"{P}id": "7", f"{P}name": "bob"}),
        (
            {"password": "x", "USER_PWD": "y", "api_key": "k", "ApiKey": "k", "auth_header": "a",
             "refresh_token": "t", "client_secret": "s", "private_key": "p", "credentials": "c",
             "session_key": "s", "passwd": "p"},
            {f"{P}{k}": REDACTED for k in ("password", "USER_PWD", "api_key", "ApiKey",
             "auth_header", "refresh_token", "client_secret", "private_key", "credentials",
             "session_key", "passwd")},
        ),
        (None, {}),
        ("not params", {}),
        (42, {}),
        ((), {}),
        ({}, {}),
    ],
)  # fmt: skip
def test_capture_parameters(params, expected) -> None:
    assert capture_parameters(params) == expected


def test_values_are_truncated_and_count_is_capped() -> None:
    captured = capture_parameters(["x" * 1000] * 100)
    assert len(captured) == MAX_PARAMETERS
    assert all(len(v) == 256 for v in captured.values())
    named = capture_parameters({f"p{i}": i for i in range(100)})
    assert len(named) == MAX_PARAMETERS


def test_unprintable_values_do_not_raise() -> None:
    class Hostile:
        def __str__(self):
            raise RuntimeError("no")

    assert capture_parameters([Hostile()]) == {f"{P}0": "?"}
