from __future__ import annotations

import logging

from otel_db.distro import OtelDbDistro, apply_environment_defaults
from otel_db.instrumentation.selection import instrumentor_for
from otel_db.instrumentation.sqlite3 import SQLite3StatementInstrumentor


def test_defaults_fill_only_what_the_user_left_unset():
    environ = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SEMCONV_STABILITY_OPT_IN": "database/dup"}
    apply_environment_defaults(environ)
    assert environ["OTEL_TRACES_EXPORTER"] == "console"
    assert environ["OTEL_SEMCONV_STABILITY_OPT_IN"] == "database/dup"
    assert environ["OTEL_METRICS_EXPORTER"] == "none"  # no collector for a console set-up
    assert environ["OTEL_PYTHON_CONFIGURATOR"] == "otel_db"


def test_defaults_for_an_empty_environment():
    environ: dict[str, str] = {}
    apply_environment_defaults(environ)
    assert environ["OTEL_TRACES_EXPORTER"] == "otlp"
    assert environ["OTEL_METRICS_EXPORTER"] == "otlp"
    assert environ["OTEL_SEMCONV_STABILITY_OPT_IN"] == "database,http"
    assert environ["OTEL_METRICS_EXEMPLAR_FILTER"] == "always_off"


def _never_loaded():
    raise AssertionError("the entry point must not be loaded")


def test_contrib_sqlalchemy_is_replaced_and_ours_obeys_the_disabled_list():
    assert instrumentor_for("sqlalchemy", _never_loaded, frozenset()) is None
    assert instrumentor_for("otel_db_sqlalchemy", lambda: "ours", frozenset()) == "ours"
    assert instrumentor_for("otel_db_sqlalchemy", _never_loaded, {"sqlalchemy"}) is None
    assert instrumentor_for("sqlite3", _never_loaded, frozenset()) is SQLite3StatementInstrumentor
    assert instrumentor_for("pymysql", lambda: "contrib", frozenset()) == "contrib"


class _EntryPoint:
    def __init__(self, name, loader):
        self.name = name
        self.load = loader


class _Broken:
    def instrument(self, **kwargs):
        raise RuntimeError("library exploded")


class _Recording:
    calls: list[dict] = []

    def instrument(self, **kwargs):
        _Recording.calls.append(kwargs)


def test_a_failing_instrumentation_warns_and_the_next_still_loads(caplog):
    caplog.set_level(logging.DEBUG, logger="otel_db.distro")
    distro = OtelDbDistro()
    distro.load_instrumentor(_EntryPoint("broken", lambda: _Broken), skip_dep_check=True)
    distro.load_instrumentor(_EntryPoint("missing", _raise_missing), skip_dep_check=True)
    distro.load_instrumentor(_EntryPoint("fine", lambda: _Recording), skip_dep_check=True)
    assert _Recording.calls == [{"skip_dep_check": True}]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "broken" in warnings[0].getMessage()
    assert "library exploded" in warnings[0].getMessage()


def _raise_missing():
    raise ModuleNotFoundError("No module named 'pymongo'")
