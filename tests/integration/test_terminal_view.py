"""The terminal view as a newcomer meets it: the demo and library mode, run for real."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from otel_db.exporters.terminal_format import LEGEND
from tests.integration.launcher import REPO, launcher_environment

DEMO = REPO / "examples" / "app.py"


#: A trace's header line. The app's own ``print()`` writes its text and its newline
#: separately, so the exporter thread's output can land between them: the header then
#: follows the app's text on the same line ("demo: 3 orders, sales 126.00trace 4bf9...").
_TRACE_HEADER = re.compile(r"trace [0-9a-f]{32}")


def _trees(text: str) -> dict[str, list[str]]:
    """Printed trees by their root span's name."""
    trees: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if header := _TRACE_HEADER.search(line):
            current = [line[header.start() :]]
        elif current is not None and line:
            if len(current) == 1:
                trees[line[3:].split("  ")[0]] = current
            current.append(line)
    return trees


def _run_demo(tmp_path: Path, python_args: list[str] | None = None):
    launcher = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    assert launcher
    return subprocess.run(
        [launcher, sys.executable, *(python_args or [str(DEMO)])],
        env=launcher_environment({"OTEL_TRACES_EXPORTER": "otel_db_terminal"}),
        cwd=tmp_path,  # the demo's SQLite file lands here
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_demo_shows_one_of_each_problem_named_and_marked(tmp_path: Path):
    result = _run_demo(tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count(LEGEND[0]) == 1
    trees = _trees(out)
    assert {"seed demo data", "POST /orders", "POST /customers", "POST /refunds"} <= set(trees)

    # N+1: only where it is on purpose, and every repeat is marked
    assert not any("N+1" in line for line in trees["seed demo data"])
    orders = trees["GET /orders"]
    detected = re.search(r"N\+1 detected: (\d+)x", orders[1])
    assert detected, orders[1]
    count = int(detected.group(1))
    marks = [m.group(1) for line in orders if (m := re.search(r"N\+1 (\d+/\d+)\]", line))]
    assert marks == [f"{k}/{count}" for k in range(1, count + 1)]

    # the slow query is named after what it reads, not a bare SELECT
    [slow] = [line for line in trees["GET /reports/sales"] if "SLOW" in line]
    assert "SELECT demo_orders" in slow

    # an error with its category, in a rolled-back transaction
    customers = "\n".join(trees["POST /customers"])
    assert "error constraint_violation" in customers and "tx rolled_back" in customers
    # a rolled-back transaction the application chose, without an error
    refunds = "\n".join(trees["POST /refunds"])
    assert "tx rolled_back" in refunds and "ERROR" not in refunds
    assert refunds.count("tx rolled_back") == 1  # said once, on the transaction

    # SQLite's first-connect PRAGMA is folded, not a statement of the seed
    assert any("library: PRAGMA read_uncommitted" in line for line in trees["seed demo data"])
    assert "demo:   GET /reports/sales" in out  # the demo says what each request shows


def test_the_demo_without_sqlalchemy_prints_the_install_command(tmp_path: Path):
    blocked = (
        "import runpy, sys; sys.modules['sqlalchemy'] = None; "
        f"runpy.run_path({str(DEMO)!r}, run_name='__main__')"
    )
    result = _run_demo(tmp_path, ["-c", blocked])
    assert result.returncode == 1
    assert "pip install 'otel-db[sqlalchemy]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_library_mode_prints_a_statement_outside_any_span_as_one_tree(tmp_path: Path):
    script = tmp_path / "library_mode.py"
    script.write_text(
        textwrap.dedent(
            """
            import otel_db

            otel_db.configure()

            import sqlalchemy as sa

            engine = sa.create_engine("sqlite://")
            with engine.connect() as conn:
                conn.execute(sa.text("select 41 + 1")).scalar()
            with engine.connect() as conn:
                conn.execute(sa.text("select 2")).scalar()
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        env=launcher_environment({"OTEL_TRACES_EXPORTER": "otel_db_terminal"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    trace_lines = [line for line in result.stdout.splitlines() if line.startswith("trace ")]
    assert len(trace_lines) == len(set(trace_lines))  # each trace printed once
    lines = result.stdout.splitlines()
    for text in ("select ? + ?", "select ?"):
        statement = next(i for i, line in enumerate(lines) if line.strip() == text)
        # nested: the statement's line sits under its TRANSACTION root, in the same tree
        assert lines[statement - 1].startswith("   └─ SELECT"), lines
        assert lines[statement - 2].startswith("└─ TRANSACTION"), lines
