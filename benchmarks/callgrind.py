"""Instructions per operation by callgrind: the matrix's cells, counted instead of timed.

    python -m benchmarks.callgrind --workloads psycopg2,redis_get \\
        --configs contrib,otel_db_full,contrib_traces,otel_db_full_traces

Wall and CPU time on a shared machine move by tens of percent between runs of the
same cell; instruction counts do not. Each cell is the harness's own command and
environment (``cell_command``, ``cell_environment``, exporting over OTLP/gRPC to
``python -m benchmarks.receiver``) with ``PYTHONHASHSEED=0``, run under
``valgrind --tool=callgrind --trace-children=yes`` at two loop sizes; the workload
process's ``totals:`` (every thread, the export thread included) at the larger size
minus the smaller, divided by the extra operations (warm-up included), is the cost of
one operation: start-up, imports and exit cancel out.

Slow (valgrind runs Python ~50x slower): a raw-driver cell takes a minute or two.
The callgrind files stay in ``--keep`` (default: a temporary directory, removed) for
``callgrind_annotate --inclusive=yes``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import contrib_env
from benchmarks.configs import CONTRIB_ENV, PROJECT_ENV, REPO_ROOT, configurations, project_python
from benchmarks.harness import ReceiverProcess, cell_command, cell_environment

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)
_WORKLOAD_CMD = re.compile(r"^cmd:.*workload\.py", re.MULTILINE)


def _warmup(ops: int) -> int:
    return max(20, ops // 10)  # workload.py's default


def count(
    receiver: ReceiverProcess,
    config_name: str,
    python: Path,
    workload: str,
    ops: int,
    out: Path,
    pythonpath: Path | None = None,
    steady_export: bool = False,
) -> tuple[int, int]:
    """(instructions of the workload process, spans the receiver got) for one run."""
    config = configurations()[config_name]
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("callgrind.out.*"):
        old.unlink()
    env = cell_environment(config, receiver.endpoint)
    env["PYTHONHASHSEED"] = "0"
    # Under valgrind an export takes tens of times longer: no stack may give up on a
    # batch (or on the exit flush) and count less work than it would really do.
    env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "600"
    env["OTEL_BSP_EXPORT_TIMEOUT"] = "600000"
    env["OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS"] = "600000"
    if steady_export:
        # Spans and metrics leave in one export at exit, in both runs of a cell: the
        # number of timed exports (5 s / 60 s, wall clock) no longer varies between them.
        env["OTEL_BSP_SCHEDULE_DELAY"] = "3600000"
        env["OTEL_METRIC_EXPORT_INTERVAL"] = "3600000"
    if pythonpath is not None:  # another otel_db tree (a before/after comparison)
        env["PYTHONPATH"] = str(pythonpath)
    command = cell_command(config, python, workload, ops)
    if config.launcher:  # the launcher is a script: run it with its python, followed
        command = [str(python), *command]
    before = receiver.settled_count()["spans"]
    subprocess.run(
        [
            "nice",
            "-n",
            "10",
            VALGRIND,
            "--tool=callgrind",
            "--trace-children=yes",
            f"--callgrind-out-file={out}/callgrind.out.%p",
            *command,
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=3600,
    )
    spans = receiver.settled_count()["spans"] - before
    # The launcher execs the workload in the same process: the last file written for
    # that pid is the workload's (the one whose command line names workload.py).
    best = 0
    for path in out.glob("callgrind.out.*"):
        text = path.read_text(errors="replace")
        if not _WORKLOAD_CMD.search(text[:4000]):
            continue
        found = _TOTALS.search(text)
        if found:
            best = max(best, int(found.group(1)))
    return best, spans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", required=True)
    parser.add_argument("--configs", required=True)
    parser.add_argument("--small", type=int, default=100, help="ops of the smaller run")
    parser.add_argument("--large", type=int, default=600, help="ops of the larger run")
    parser.add_argument("--keep", type=Path, default=None, help="keep callgrind files here")
    parser.add_argument(
        "--pythonpath",
        type=Path,
        default=None,
        help="an otel_db source tree to run instead of the installed one (e.g. another "
        "commit's src/, from git archive)",
    )
    parser.add_argument(
        "--steady-export",
        action="store_true",
        help="export spans and metrics only at exit (OTEL_BSP_SCHEDULE_DELAY, "
        "OTEL_METRIC_EXPORT_INTERVAL): removes the run-to-run spread that the number of "
        "timed exports causes; fewer than 512 spans per run, or a full batch is exported",
    )
    args = parser.parse_args(argv)

    all_configs = configurations()
    config_names = [c.strip() for c in args.configs.split(",") if c.strip()]
    pythons = {PROJECT_ENV: project_python()}
    if any(all_configs[name].environment == CONTRIB_ENV for name in config_names):
        pythons[CONTRIB_ENV] = contrib_env.ensure()
    extra = (args.large + _warmup(args.large)) - (args.small + _warmup(args.small))
    keep = args.keep or Path(tempfile.mkdtemp(prefix="otel-db-callgrind-"))
    print("| workload | configuration | instructions/op | spans/op |", flush=True)
    print("|---|---|---|---|", flush=True)
    with ReceiverProcess() as receiver:
        for workload in [w.strip() for w in args.workloads.split(",") if w.strip()]:
            for name in config_names:
                python = pythons[all_configs[name].environment]
                directory = keep / f"{workload}-{name}"
                small, small_spans = count(
                    receiver,
                    name,
                    python,
                    workload,
                    args.small,
                    directory / "small",
                    args.pythonpath,
                    args.steady_export,
                )
                large, large_spans = count(
                    receiver,
                    name,
                    python,
                    workload,
                    args.large,
                    directory / "large",
                    args.pythonpath,
                    args.steady_export,
                )
                per_op = (large - small) / extra
                spans = (large_spans - small_spans) / extra
                print(f"| {workload} | {name} | {per_op / 1000:,.1f}k | {spans:.2f} |", flush=True)
    if args.keep is None:
        shutil.rmtree(keep, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
