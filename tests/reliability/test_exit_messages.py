"""What a newcomer reads at exit when export fails: the real cause, and no wait for the
exit bound when nothing listens at the collector's address."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port

from .conftest import SMALL_APP, app_env, run_app

#: Far longer than the subprocess may run: an exit that waits for the bound fails the
#: test by its timeout.
LONG_BOUND_MS = "120000"


def _summary(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "could not be exported" in line]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_refused_collector_is_named_and_the_exit_does_not_wait_for_the_bound(
    protocol: str, tmp_path: Path
):
    env = app_env(
        f"http://127.0.0.1:{free_port()}",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS=LONG_BOUND_MS,
    )
    app = run_app(SMALL_APP, env, tmp_path, timeout=60)
    assert app.returncode == 0, app.stderr
    summary = _summary(app.stderr)
    assert "connection refused" in summary, summary
    assert "exit bound" not in summary and "Shutdown in progress" not in summary, summary


def test_a_misspelled_exporter_gets_the_closest_name_and_where_it_falls_back(tmp_path: Path):
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = app_env(
        endpoint,
        OTEL_TRACES_EXPORTER="otel_db_termnial",
        OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS=LONG_BOUND_MS,
    )
    env.pop("OTEL_METRICS_EXPORTER")  # the distro's default: follows the traces exporter
    app = run_app(SMALL_APP, env, tmp_path, timeout=60)
    assert app.returncode == 0, app.stderr
    [warning] = [line for line in app.stderr.splitlines() if "otel_db_termnial" in line]
    assert "did you mean 'otel_db_terminal'?" in warning, warning
    assert f"using 'otlp', which sends to {endpoint} (OTEL_EXPORTER_OTLP_ENDPOINT)" in warning
    assert "connection refused" in _summary(app.stderr)
    assert "metrics" not in app.stderr.lower()  # no metrics pushed to a collector not asked for
