"""``python -m benchmarks``: the whole per-statement cost matrix, printed as a table.

    python -m benchmarks                      # full matrix, 3 interleaved rounds (< 10 min)
    python -m benchmarks --quick              # seconds-long smoke run, 1 round
    python -m benchmarks --configs untraced,otel_db --workloads sa_sqlite,redis_get

Run from the repository root in the project's environment (otel_db installed). The
contrib stack's virtualenv is created on first use under benchmarks/.venvs/contrib.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from benchmarks import contrib_env
from benchmarks.configs import (
    CONTRIB_ENV,
    PROJECT_ENV,
    REPO_ROOT,
    WORKLOADS,
    configurations,
    project_python,
)
from benchmarks.harness import MatrixPlan, environment_sqlalchemy, run_matrix, save_runs
from benchmarks.report import legend, table, targets


def _loadavg() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _names(raw: str | None, known: list[str], what: str) -> list[str]:
    if not raw:
        return known
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--workloads", help="comma-separated subset")
    parser.add_argument("--configs", help="comma-separated subset")
    parser.add_argument("--ops-scale", type=float, default=1.0, help="multiply every size")
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "matrix.json",
        help="where the raw runs are written (JSON)",
    )
    args = parser.parse_args(argv)

    all_configs = configurations()
    workloads = _names(args.workloads, list(WORKLOADS), "workloads")
    config_names = _names(args.configs, list(all_configs), "configurations")
    rounds = args.rounds or (1 if args.quick else 3)

    pythons = {PROJECT_ENV: project_python()}
    versions = {PROJECT_ENV: environment_sqlalchemy(pythons[PROJECT_ENV])}
    if any(all_configs[n].environment == CONTRIB_ENV for n in config_names):
        pythons[CONTRIB_ENV] = contrib_env.ensure()
        versions[CONTRIB_ENV] = environment_sqlalchemy(pythons[CONTRIB_ENV])
        if versions[CONTRIB_ENV] == versions[PROJECT_ENV] and "untraced_contrib" in config_names:
            config_names.remove("untraced_contrib")  # same SQLAlchemy: one baseline is enough
    else:
        config_names = [n for n in config_names if all_configs[n].environment != CONTRIB_ENV]
    configs = [all_configs[n] for n in config_names]

    ops = {
        w: max(
            1, int((WORKLOADS[w].quick_ops if args.quick else WORKLOADS[w].ops) * args.ops_scale)
        )
        for w in workloads
    }
    print(
        f"otel_db benchmark: {len(workloads)} workloads x {len(configs)} configurations x "
        f"{rounds} rounds; SQLAlchemy {versions}",
        flush=True,
    )
    load_before = _loadavg()
    started = time.monotonic()
    runs = run_matrix(
        MatrixPlan(workloads, configs, pythons, ops, rounds),
        log=lambda line: print(line, flush=True),
    )
    elapsed = time.monotonic() - started
    load_after = _loadavg()
    save_runs(
        runs,
        args.output,
        {
            "rounds": rounds,
            "ops": ops,
            "sqlalchemy": versions,
            "python": platform.python_version(),
            "elapsed_s": elapsed,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
    )
    print()
    print(table(runs, workloads, configs, versions))
    print()
    print(legend(workloads, configs))
    checked = targets(runs, workloads)
    if checked:
        print("Targets (otel_db_full vs contrib, total per-op time):")
        print("\n".join(checked))
    print(
        f"\n{len(runs)} runs in {elapsed:.0f} s; load average {load_before} before, "
        f"{load_after} after; raw runs in {args.output}"
    )
    failed = [r for r in runs if r.error]
    for run in failed[:10]:
        print(f"FAILED {run.workload}/{run.config} round {run.round}: {run.error}", file=sys.stderr)
    return 1 if failed and len(failed) == len(runs) else 0


if __name__ == "__main__":
    sys.exit(main())
