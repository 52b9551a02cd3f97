from __future__ import annotations

import logging

import pytest

from otel_db.settings import Settings


def test_defaults_match_the_contract():
    settings = Settings.from_env({})
    assert settings.slow_query_threshold_ms == 500.0
    assert settings.n_plus_one_threshold == 5
    assert settings.sanitize_queries is True
    assert settings.capture_parameters is False
    assert settings.explain_slow_queries is False
    assert settings.sqlcommenter is False
    assert settings.transaction_spans is True
    assert settings.pool_attributes is True
    assert settings.warnings == ()


def test_values_are_parsed():
    settings = Settings.from_env(
        {
            "OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS": " 250.5 ",
            "OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD": "0",
            "OTEL_PYTHON_DB_SANITIZE_QUERIES": "FALSE",
            "OTEL_PYTHON_DB_CAPTURE_PARAMETERS": "yes",
            "OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT": "false",
            "OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES": "1",
            "OTEL_PYTHON_DB_SQLCOMMENTER": "on",
            "OTEL_PYTHON_DB_TRANSACTION_SPANS": "off",
            "OTEL_PYTHON_DB_POOL_ATTRIBUTES": "no",
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "redis, sqlite3 ,",
        }
    )
    assert settings.slow_query_threshold_ms == 250.5
    assert settings.n_plus_one_threshold == 0
    assert settings.sanitize_queries is False
    assert settings.capture_parameters is True
    assert settings.capture_query_text is False
    assert settings.explain_slow_queries is True
    assert settings.sqlcommenter is True
    assert settings.transaction_spans is False
    assert settings.pool_attributes is False
    assert settings.service_name == "shop"
    assert settings.disabled_instrumentations == frozenset({"redis", "sqlite3"})


def test_service_name_falls_back_to_resource_attributes():
    settings = Settings.from_env({"OTEL_RESOURCE_ATTRIBUTES": "team=db, service.name=billing"})
    assert settings.service_name == "billing"


@pytest.mark.parametrize(
    ("name", "value", "default"),
    [
        ("OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS", "fast", 500.0),
        ("OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS", "-5", 500.0),
        ("OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS", "nan", 500.0),
        ("OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS", "inf", 500.0),
        ("OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD", "2.5", 5),
        ("OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD", "-1", 5),
        ("OTEL_PYTHON_DB_SANITIZE_QUERIES", "maybe", True),
        ("OTEL_PYTHON_DB_TRANSACTION_SPANS", "2", True),
    ],
)
def test_bad_value_warns_once_naming_variable_value_and_default(caplog, name, value, default):
    caplog.set_level(logging.WARNING, logger="otel_db.settings")
    settings = Settings.from_env({name: value})
    field = {
        "OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS": "slow_query_threshold_ms",
        "OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD": "n_plus_one_threshold",
        "OTEL_PYTHON_DB_SANITIZE_QUERIES": "sanitize_queries",
        "OTEL_PYTHON_DB_TRANSACTION_SPANS": "transaction_spans",
    }[name]
    assert getattr(settings, field) == default
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert name in message and repr(value) in message and repr(default) in message
    assert settings.warnings == (message,)


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.sanitize_queries = False  # type: ignore[misc]


def test_every_warning_starts_with_the_otel_db_prefix(caplog):
    caplog.set_level(logging.WARNING, logger="otel_db.settings")
    Settings.from_env(
        {
            "OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS": "fast",
            "OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD": "x",
        }
    )
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert all(message.startswith("otel_db: ") for message in messages), messages


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("OTEL_PYTHON_DB_SLOW_QUERY_TRESHOLD_MS", "OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS"),
        ("OTEL_PYTHON_DB_NPLUSONE_THRESHOLD", "OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD"),
        ("OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT", "OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS"),
    ],
)
def test_an_unknown_own_variable_gets_one_warning_with_the_closest_name(caplog, typo, meant):
    caplog.set_level(logging.WARNING, logger="otel_db.settings")
    settings = Settings.from_env({typo: "3", "OTEL_SERVICE_NAME": "shop"})
    [message] = [record.getMessage() for record in caplog.records]
    assert (
        message
        == f"otel_db: {typo} is not an otel_db setting (did you mean {meant}?); it is ignored"
    )
    assert settings.warnings == (message,)
    assert settings.slow_query_threshold_ms == 500.0  # the typo changed nothing


def test_an_unknown_own_variable_with_no_close_name_is_still_reported(caplog):
    caplog.set_level(logging.WARNING, logger="otel_db.settings")
    Settings.from_env({"OTEL_PYTHON_DB_FOO": "1", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ""})
    [message] = [record.getMessage() for record in caplog.records]
    assert message == "otel_db: OTEL_PYTHON_DB_FOO is not an otel_db setting; it is ignored"


def test_every_documented_variable_is_known():
    from otel_db.settings import known_variable_names

    assert "OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS" in known_variable_names()
    assert "OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS" in known_variable_names()
    assert Settings.from_env({name: "1" for name in known_variable_names()}).warnings == ()


def test_every_variable_is_documented_in_configuration_md():
    from pathlib import Path

    from otel_db.settings import known_variable_names

    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [name for name in sorted(known_variable_names()) if f"| `{name}` |" not in docs]
    assert missing == []
