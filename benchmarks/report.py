"""Turns the runs of a matrix into the table: medians, ranges, ratios, spans per op."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.configs import CONTRIB_ENV, TARGETS, WORKLOAD_DESCRIPTIONS, Configuration
from benchmarks.harness import CellRun


@dataclass(frozen=True)
class CellSummary:
    workload: str
    config: str
    median_us: float | None
    min_us: float | None
    max_us: float | None
    spans_per_op: float | None
    runs: int
    errors: tuple[str, ...]
    cpu_median_us: float | None = None


def summarize(runs: Sequence[CellRun], workload: str, config: str) -> CellSummary:
    mine = [r for r in runs if r.workload == workload and r.config == config]
    good = [r for r in mine if r.error is None and r.ns_per_op is not None]
    times = [r.ns_per_op / 1000 for r in good]  # type: ignore[operator]
    spans = [r.spans_per_op for r in good if r.spans_per_op is not None]
    cpu = [r.cpu_ns_per_op / 1000 for r in good if r.cpu_ns_per_op is not None]
    return CellSummary(
        workload=workload,
        config=config,
        median_us=statistics.median(times) if times else None,
        min_us=min(times) if times else None,
        max_us=max(times) if times else None,
        spans_per_op=statistics.median(spans) if spans else None,
        runs=len(good),
        errors=tuple(r.error for r in mine if r.error),
        cpu_median_us=statistics.median(cpu) if cpu else None,
    )


def _baseline_name(config: Configuration, configs: Sequence[Configuration]) -> str | None:
    """The untraced configuration of the same environment (the contrib virtualenv's own
    untraced run when it exists, since its SQLAlchemy differs)."""
    names = {c.name for c in configs}
    if config.environment == CONTRIB_ENV and "untraced_contrib" in names:
        return "untraced_contrib"
    return "untraced" if "untraced" in names else None


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(
    runs: Sequence[CellRun],
    workloads: Sequence[str],
    configs: Sequence[Configuration],
    sqlalchemy_versions: dict[str, str | None] | None = None,
) -> str:
    """A Markdown table; each row a (workload, configuration) cell."""
    header = (
        "| workload | configuration | median us/op | min-max | added us/op | vs untraced "
        "| vs contrib | spans/op | CPU us/op | CPU vs contrib |"
    )
    lines = [header, "|" + "---|" * 10]
    for workload in workloads:
        summaries = {c.name: summarize(runs, workload, c.name) for c in configs}
        for config in configs:
            cell = summaries[config.name]
            # Against the contrib stack exporting the same signals.
            contrib = summaries.get(config.compare_to)
            baseline_name = _baseline_name(config, configs)
            baseline = summaries.get(baseline_name) if baseline_name else None
            added = (
                cell.median_us - baseline.median_us
                if config.traced
                and baseline is not None
                and cell.median_us is not None
                and baseline.median_us is not None
                else None
            )
            label = config.name
            if sqlalchemy_versions and workload.startswith(("sa_", "orm_", "async_", "tx10_")):
                version = sqlalchemy_versions.get(config.environment)
                if version:
                    label += f" (SA {version})"
            if cell.errors and cell.median_us is None:
                lines.append(
                    f"| {workload} | {label} | ERROR: {cell.errors[0][:60]} | | | | | | | |"
                )
                continue
            spread = f"{_us(cell.min_us)}-{_us(cell.max_us)}" if cell.min_us is not None else "-"
            vs_untraced = (
                _ratio(cell.median_us, baseline.median_us)
                if config.traced and baseline is not None
                else "-"
            )
            vs_contrib = (
                _ratio(cell.median_us, contrib.median_us)
                if contrib is not None and config.name != config.compare_to and config.traced
                else "-"
            )
            spans = "-" if cell.spans_per_op is None else f"{cell.spans_per_op:.2f}"
            cpu_vs_contrib = (
                _ratio(cell.cpu_median_us, contrib.cpu_median_us)
                if contrib is not None and config.name != config.compare_to and config.traced
                else "-"
            )
            lines.append(
                f"| {workload} | {label} | {_us(cell.median_us)} | {spread} | "
                f"{'-' if added is None else f'{added:+.1f}'} | {vs_untraced} | {vs_contrib} "
                f"| {spans} | {_us(cell.cpu_median_us)} | {cpu_vs_contrib} |"
            )
    return "\n".join(lines)


def legend(workloads: Sequence[str], configs: Sequence[Configuration]) -> str:
    lines = ["Workloads:"]
    lines += [f"- `{w}`: {WORKLOAD_DESCRIPTIONS.get(w, w)}" for w in workloads]
    lines.append("Configurations:")
    lines += [f"- `{c.name}`: {c.description}" for c in configs]
    return "\n".join(lines)


#: (otel_db configuration, contrib configuration it is held against), per metrics set-up.
TARGET_PAIRS = (("otel_db_full", "contrib"), ("otel_db_full_traces", "contrib_traces"))


def targets(runs: Sequence[CellRun], workloads: Sequence[str]) -> list[str]:
    """The issue's matrix targets, checked against this run's medians, in both metrics
    configurations (metrics exported; traces only)."""
    out = []
    for workload in workloads:
        limit = TARGETS.get(workload)
        if limit is None:
            continue
        for ours, theirs in TARGET_PAIRS:
            full = summarize(runs, workload, ours).median_us
            contrib = summarize(runs, workload, theirs).median_us
            if full is None or contrib is None:
                continue
            verdict = "met" if full <= contrib * limit else "NOT met"
            line = (
                f"- {workload}: {ours} {full:.1f} us vs {theirs} {contrib:.1f} us "
                f"({full / contrib:.2f}x, target <= {limit:.2f}x): {verdict}"
            )
            full_cpu = summarize(runs, workload, ours).cpu_median_us
            contrib_cpu = summarize(runs, workload, theirs).cpu_median_us
            if full_cpu and contrib_cpu:
                line += f"; CPU time {full_cpu / contrib_cpu:.2f}x"
            out.append(line)
    return out
