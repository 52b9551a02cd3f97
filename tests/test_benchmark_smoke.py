"""The benchmark harness still runs end to end (no timing is asserted: speed lives in
benchmarks/). A tiny matrix in the project's environment only: no contrib virtualenv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_quick_matrix_prints_a_table_and_delivers_spans(tmp_path: Path) -> None:
    output = tmp_path / "matrix.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--workloads",
            "sa_sqlite",
            "--configs",
            "untraced,otel_db",
            "--output",
            str(output),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    rows = {
        line.split("|")[2].strip().split(" ")[0]: [cell.strip() for cell in line.split("|")]
        for line in completed.stdout.splitlines()
        if line.startswith("| sa_sqlite |")
    }
    assert set(rows) == {"untraced", "otel_db"}, completed.stdout
    # Columns: workload, configuration, median, min-max, added, vs untraced, vs contrib, spans/op.
    assert float(rows["untraced"][8]) == 0.0, "untraced runs must export nothing"
    assert float(rows["otel_db"][8]) >= 1.0, "otel_db must deliver a span per statement"
    assert output.exists()


def test_micro_quick_runs() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.micro", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "enrichment added per statement span" in completed.stdout
    assert "analyze_statement cached" in completed.stdout
