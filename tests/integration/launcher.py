"""Runs a script the way a user does: under ``opentelemetry-instrument`` with OTEL_* set."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent / "scripts"
REPO = Path(__file__).resolve().parents[2]


def launcher_environment(extra: Mapping[str, str]) -> dict[str, str]:
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_") or key.startswith("OTEL_DB_TEST_")
    }
    environ.update(
        {
            "OTEL_SERVICE_NAME": "otel-db-launcher-test",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), environ.get("PYTHONPATH")])),
        }
    )
    environ.update(extra)
    return environ


def run_script(
    script: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    instrumented: bool = True,
    timeout: float = 90,
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPTS / script), *args]
    if instrumented:
        launcher = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
        assert launcher, "opentelemetry-instrument is not installed beside this Python"
        command = [launcher, *command]
    return subprocess.run(
        command,
        env=launcher_environment(env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_inline(
    tmp_path: Path, body: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """:func:`run_script` on ``body`` (dedented), written to a file under ``tmp_path``."""
    script = tmp_path / "inline_app.py"
    script.write_text(textwrap.dedent(body))
    return run_script(str(script), env=env)


def run_with_explain(tmp_path: Path, app: str, explain: str) -> tuple[str, list[dict[str, Any]]]:
    """``app`` under the launcher with the console exporter, EXPLAIN of slow SELECTs
    switched by ``explain`` (threshold 100 ms): (its stdout, its database spans)."""
    from tests.support.console_output import console_spans

    result = run_inline(
        tmp_path,
        app,
        env={
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES": explain,
            "OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS": "100",
        },
    )
    assert result.returncode == 0, result.stderr
    spans = [s for s in console_spans(result.stdout) if "db.system.name" in s["attributes"]]
    return result.stdout, spans
