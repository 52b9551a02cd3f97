from __future__ import annotations

from tests.integration.launcher import run_script


def test_engine_created_before_instrumentation_is_traced_once():
    result = run_script("engine_before_instrumentation.py", instrumented=False)
    assert result.returncode == 0, result.stderr
    assert "SPANS=['SELECT 1 AS early_engine']" in result.stdout


def test_app_without_greenlet_still_runs_under_the_launcher():
    result = run_script(
        "asyncio_without_greenlet.py", env={"OTEL_TRACES_EXPORTER": "otel_db_terminal"}
    )
    assert result.returncode == 0, result.stderr
    assert "RESULT=42" in result.stdout
    assert "SELECT ? + ?" in result.stdout or "SELECT 41 + 1" in result.stdout
    assert "Traceback" not in result.stderr
