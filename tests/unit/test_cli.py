"""The ``otel-db`` command: ``settings`` and the ``run`` launcher's environment repair.

``otel-db run`` end to end (a real app, a real receiver) is in
tests/reliability/test_env_hygiene.py. The commands run in subprocesses here: both
repair the environment of the process they run in.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_db.launcher import repair_process_environment

REPO_ROOT = Path(__file__).resolve().parents[2]


def _otel_db(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(variables)
    return subprocess.run(
        [sys.executable, "-m", "otel_db.cli", *arguments],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_reports_an_unknown_propagator_instead_of_crashing():
    # Importing the distro imports opentelemetry.propagate, which raises on this value.
    done = _otel_db("settings", OTEL_PROPAGATORS="tracecontext,nonexistent")

    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["environment"]["OTEL_PROPAGATORS"] == "tracecontext"
    (repaired,) = shown["repaired"]
    assert "OTEL_PROPAGATORS='tracecontext,nonexistent'" in repaired
    assert "'nonexistent'" in repaired and "using 'tracecontext'" in repaired
    on_stderr = [line for line in done.stderr.splitlines() if "OTEL_PROPAGATORS=" in line]
    assert on_stderr == [repaired], done.stderr


def test_settings_with_a_clean_environment_reports_no_repairs():
    done = _otel_db("settings")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["repaired"] == []
    assert shown["environment"]["OTEL_TRACES_EXPORTER"] == "otlp"
    assert done.stderr == ""


def test_run_hands_its_arguments_to_the_stock_launcher():
    done = _otel_db("run", "--help", OTEL_PROPAGATORS="nonexistent")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: otel-db run")
    assert "--propagators" in done.stdout and "command_args" in done.stdout
    assert "OTEL_PROPAGATORS='nonexistent'" in done.stderr


def test_run_without_a_command_is_the_launchers_usage_error():
    done = _otel_db("run")
    assert done.returncode == 2
    assert "otel-db run" in done.stderr and "command" in done.stderr


def test_help_lists_run():
    done = _otel_db("--help")
    assert done.returncode == 0 and "run" in done.stdout and "settings" in done.stdout


def test_repairs_are_printed_once_each_and_not_logged(caplog: pytest.LogCaptureFixture):
    env = {
        "OTEL_PROPAGATORS": "nonexistent",  # changed: the app's distro will not see it
        "OTEL_TRACES_EXPORTER": "OTLP",  # changed
        "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317",  # kept: the distro says it
    }
    stream = io.StringIO()
    with caplog.at_level(logging.DEBUG, logger="otel_db.env_hygiene"):
        shown = repair_process_environment(env, stream)

    assert env["OTEL_PROPAGATORS"] == "tracecontext,baggage"
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "collector:4317"
    assert [line.split("=")[0] for line in shown] == [
        "otel_db: OTEL_TRACES_EXPORTER",
        "otel_db: OTEL_PROPAGATORS",
    ]
    assert stream.getvalue() == "".join(line + "\n" for line in shown)
    assert not [r for r in caplog.records if r.name == "otel_db.env_hygiene"]
    assert logging.getLogger("otel_db.env_hygiene").disabled is False


def test_without_a_distro_after_it_every_repair_is_printed():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317"}
    stream = io.StringIO()
    shown = repair_process_environment(env, stream, leave_repeats_to_distro=False)
    assert len(shown) == 1 and "TLS" in shown[0]
    assert repair_process_environment(dict(env), io.StringIO()) == []


@pytest.mark.parametrize("arguments", [("--version",), ("run", "--version")])
def test_version_is_otel_dbs_own(arguments):
    from otel_db.version import __version__

    result = _otel_db(*arguments)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"otel-db {__version__} (opentelemetry-instrument "), result
