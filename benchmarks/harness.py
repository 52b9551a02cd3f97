"""Runs the (workload x configuration) matrix: one subprocess per cell, interleaved rounds.

Every cell exports over OTLP/gRPC to one receiver process for the whole run; after a
cell's process has exited (its shutdown flushed every span), the harness reads the
receiver's count, so each cell's spans are the difference of two counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.configs import (
    CONTRIB_ENV,
    REPO_ROOT,
    WORKLOAD_SCRIPT,
    Configuration,
    launcher_next_to,
)

CELL_TIMEOUT_S = 180.0
RECEIVER_START_TIMEOUT_S = 30.0
_RESULT_PREFIX = "BENCH_RESULT "


@dataclass
class CellRun:
    """One run of one cell."""

    workload: str
    config: str
    round: int
    ns_per_op: float | None = None
    cpu_ns_per_op: float | None = None
    ops: int = 0
    warmup: int = 0
    spans: int = 0
    by_scope: dict[str, int] = field(default_factory=dict)
    sqlalchemy: str | None = None
    wall_s: float = 0.0
    error: str | None = None

    @property
    def spans_per_op(self) -> float | None:
        total = self.ops + self.warmup
        return self.spans / total if total else None


class ReceiverProcess:
    """``python -m benchmarks.receiver`` in the project's environment."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self.endpoint = ""
        self.control_port = 0

    def __enter__(self) -> ReceiverProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.receiver"],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env=_clean_environment(),
        )
        deadline = time.monotonic() + RECEIVER_START_TIMEOUT_S
        assert self._process.stdout is not None
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line:
                break
            if line.startswith("RECEIVER "):
                info = json.loads(line[len("RECEIVER ") :])
                self.endpoint = info["otlp"]
                self.control_port = info["control"]
                return self
        self.__exit__()
        raise RuntimeError("the OTLP receiver did not start")

    def __exit__(self, *exc_info: object) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def count(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.control_port}/count"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def settled_count(self, timeout_s: float = 3.0) -> dict[str, Any]:
        """The count once it stops moving (exports complete before the workload exits;
        this only guards against a request still being handled)."""
        last = self.count()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.count()
            if now["spans"] == last["spans"]:
                return now
            last = now
        return last


def _clean_environment() -> dict[str, str]:
    """The caller's environment without any OTEL_* setting or virtualenv path."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_") and key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }


def cell_command(config: Configuration, python: Path, workload: str, ops: int) -> list[str]:
    command = [str(python), str(WORKLOAD_SCRIPT), workload, "--ops", str(ops)]
    if config.launcher:
        launcher = launcher_next_to(python)
        if not launcher.exists():
            raise FileNotFoundError(
                f"{launcher} not found: is opentelemetry-instrumentation installed?"
            )
        command = [str(launcher), *command]
    return command


def cell_environment(config: Configuration, endpoint: str) -> dict[str, str]:
    env = _clean_environment()
    env.update(
        {
            "OTEL_SERVICE_NAME": f"bench-{config.name}",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{endpoint}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }
    )
    env.update(config.env)
    return env


def run_cell(
    receiver: ReceiverProcess,
    config: Configuration,
    python: Path,
    workload: str,
    ops: int,
    round_number: int,
) -> CellRun:
    run = CellRun(workload=workload, config=config.name, round=round_number)
    before = receiver.settled_count()
    started = time.monotonic()
    try:
        completed = subprocess.run(
            cell_command(config, python, workload, ops),
            cwd=REPO_ROOT,
            env=cell_environment(config, receiver.endpoint),
            capture_output=True,
            text=True,
            timeout=CELL_TIMEOUT_S,
        )
    except (subprocess.TimeoutExpired, OSError) as error:
        run.error = f"{type(error).__name__}: {error}"
        return run
    run.wall_s = time.monotonic() - started
    after = receiver.settled_count()
    run.spans = after["spans"] - before["spans"]
    run.by_scope = {
        scope: count - before["by_scope"].get(scope, 0)
        for scope, count in after["by_scope"].items()
        if count - before["by_scope"].get(scope, 0)
    }
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        run.error = f"exit {completed.returncode}: " + " | ".join(tail)
        return run
    result = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    run.ns_per_op = result["ns_per_op"]
    run.cpu_ns_per_op = result.get("cpu_ns_per_op")
    run.ops = result["ops"]
    run.warmup = result["warmup"]
    run.sqlalchemy = result.get("sqlalchemy")
    if config.traced and not result.get("traced"):
        run.error = "the launcher installed no SDK tracer provider"
    return run


@dataclass
class MatrixPlan:
    workloads: Sequence[str]
    configs: Sequence[Configuration]
    pythons: dict[str, Path]  # environment name -> python
    ops: dict[str, int]
    rounds: int


def run_matrix(plan: MatrixPlan, log: Callable[[str], None] = print) -> list[CellRun]:
    """Interleaved: each round runs every cell once; the configuration order rotates
    from round to round so none always runs first (or right after another)."""
    runs: list[CellRun] = []
    total = plan.rounds * len(plan.workloads) * len(plan.configs)
    with ReceiverProcess() as receiver:
        for round_number in range(1, plan.rounds + 1):
            shift = (round_number - 1) % len(plan.configs)
            order = list(plan.configs[shift:]) + list(plan.configs[:shift])
            for workload in plan.workloads:
                for config in order:
                    run = run_cell(
                        receiver,
                        config,
                        plan.pythons[config.environment],
                        workload,
                        plan.ops[workload],
                        round_number,
                    )
                    runs.append(run)
                    done = len(runs)
                    shown = (
                        f"{run.ns_per_op / 1000:8.1f} us/op, {run.spans_per_op or 0:.2f} spans/op"
                        if run.error is None
                        else f"ERROR {run.error}"
                    )
                    log(
                        f"[{done:3}/{total}] round {round_number} "
                        f"{workload:18} {config.name:16} {shown}"
                    )
    return runs


def save_runs(runs: Sequence[CellRun], path: Path, meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]}, indent=1))


def environment_sqlalchemy(python: Path) -> str | None:
    """The SQLAlchemy version a virtualenv has (None if it has none)."""
    completed = subprocess.run(
        [
            str(python),
            "-c",
            "from importlib import metadata; print(metadata.version('sqlalchemy'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_environment(),
    )
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def is_contrib(config: Configuration) -> bool:
    return config.environment == CONTRIB_ENV
