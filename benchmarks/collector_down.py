"""Per-statement cost and exit time with the collector healthy, refusing, blackholed or slow.

    python -m benchmarks.collector_down                    # psycopg2, 5 interleaved rounds
    python -m benchmarks.collector_down --workload sa_sqlite --rounds 3
    python -m benchmarks.collector_down --cases healthy,blackholed --ops 6000

One workload of ``benchmarks/workload.py`` runs under ``opentelemetry-instrument`` with
the otel_db configuration of ``benchmarks/configs.py`` (the same command and environment
as a matrix cell), once per case and round, each in its own process, exporting traces
(and, by the distro's default, metrics) over OTLP/gRPC to:

- ``healthy``: the counting receiver process (``benchmarks/receiver.py``);
- ``refused``: a loopback port nothing listens on (connection refused);
- ``blackholed``: a loopback socket in this process that accepts connections and never
  reads or answers (the gRPC handshake never completes; each export waits its timeout);
- ``slow``: a receiver in this process that answers every export after ``--slow-seconds``.

The per-statement time is the workload's own timed loop (after warm-up). The exit time
is from the workload's result line (its last output) to the end of the process: the
bounded exit flush (``OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS``, 5 s by default) plus the
interpreter's teardown. Rounds are interleaved and the case order rotates per round.
Nothing but the endpoint differs between cases; the OTLP settings are the defaults.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.configs import (
    REPO_ROOT,
    WORKLOADS,
    Configuration,
    configurations,
    project_python,
)
from benchmarks.harness import ReceiverProcess, cell_command, cell_environment

CASES = ("healthy", "refused", "blackholed", "slow")
DEFAULT_WORKLOAD = "psycopg2"
DEFAULT_ROUNDS = 5
DEFAULT_SLOW_S = 1.0
#: A run's time limit: the workload, its exit flush (5 s bound) and a loaded machine.
RUN_TIMEOUT_S = 180.0
#: Connections the blackhole keeps open at most (a client reconnects per attempt).
BLACKHOLE_MAX_CONNECTIONS = 256
_RESULT_PREFIX = "BENCH_RESULT "
_LOST_AT_EXIT = re.compile(r"at exit, (\d+) spans could not be exported")


@dataclass
class CaseRun:
    case: str
    round: int
    ns_per_op: float | None = None
    ops: int = 0
    warmup: int = 0
    exit_s: float | None = None
    wall_s: float = 0.0
    delivered: int | None = None  # spans the receiver counted (healthy and slow only)
    lost_at_exit: int = 0  # from otel_db's one-line exit summary
    error: str | None = None


# ----------------------------------------------------------------- the broken collectors
def refused_endpoint() -> str:
    """A loopback port with nothing listening: bound, then closed at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


class Blackhole:
    """A loopback TCP port that accepts every connection and never reads or writes."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.endpoint = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)

    def __enter__(self) -> Blackhole:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)  # held open, never read: the peer waits
            if len(self._held) > BLACKHOLE_MAX_CONNECTIONS:
                self._held.pop(0).close()

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()
        for connection in self._held:
            connection.close()
        self._held.clear()


class SlowReceiver:
    """An OTLP/gRPC receiver that answers each export (traces, metrics, logs) after a
    pause, counting the spans it accepted."""

    def __init__(self, delay_s: float) -> None:
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1 import (
            metrics_service_pb2,
            metrics_service_pb2_grpc,
        )
        from opentelemetry.proto.collector.trace.v1 import (
            trace_service_pb2,
            trace_service_pb2_grpc,
        )

        self.delay_s = delay_s
        self.spans = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                receiver._stopped.wait(receiver.delay_s)
                count = sum(
                    len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
                )
                with receiver._lock:
                    receiver.spans += count
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                receiver._stopped.wait(receiver.delay_s)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request, context):
                receiver._stopped.wait(receiver.delay_s)
                return logs_service_pb2.ExportLogsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{port}"

    def count(self) -> int:
        with self._lock:
            return self.spans

    def __enter__(self) -> SlowReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()  # pending exports answer at once
        self._server.stop(grace=1).wait(5)


# ----------------------------------------------------------------- one run
@dataclass
class Target:
    """Where a case exports to, and how to read what arrived (None: nothing can)."""

    endpoint: str
    delivered: Callable[[], int] | None


def run_case(
    case: str,
    target: Target,
    config: Configuration,
    workload: str,
    ops: int,
    round_number: int,
    python: Path,
) -> CaseRun:
    run = CaseRun(case=case, round=round_number)
    before = target.delivered() if target.delivered else None
    with tempfile.TemporaryFile(mode="w+") as stderr:  # never a full pipe
        started = time.monotonic()
        result_at: float | None = None
        result_line = ""
        process = subprocess.Popen(
            cell_command(config, python, workload, ops),
            cwd=REPO_ROOT,
            env=cell_environment(config, target.endpoint),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        timer = threading.Timer(RUN_TIMEOUT_S, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith(_RESULT_PREFIX):
                    result_at = time.monotonic()
                    result_line = line
            returncode = process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        ended = time.monotonic()
        stderr.seek(0)
        errors = stderr.read()
    run.wall_s = ended - started
    if returncode != 0 or not result_line or result_at is None:
        tail = " | ".join(errors.strip().splitlines()[-3:])
        run.error = f"exit {returncode}: {tail}"
        return run
    result = json.loads(result_line[len(_RESULT_PREFIX) :])
    run.ns_per_op = result["ns_per_op"]
    run.ops = result["ops"]
    run.warmup = result["warmup"]
    run.exit_s = ended - result_at
    if not result.get("traced"):
        run.error = "the launcher installed no SDK tracer provider"
    if target.delivered is not None and before is not None:
        time.sleep(0.2)  # the last export's request may still be being counted
        run.delivered = target.delivered() - before
    lost = _LOST_AT_EXIT.search(errors)
    run.lost_at_exit = int(lost.group(1)) if lost else 0
    return run


@contextmanager
def targets(cases: Sequence[str], slow_s: float) -> Iterator[dict[str, Target]]:
    with ExitStack() as stack:
        out: dict[str, Target] = {}
        if "healthy" in cases:
            receiver = stack.enter_context(ReceiverProcess())
            out["healthy"] = Target(
                receiver.endpoint, lambda: int(receiver.settled_count()["spans"])
            )
        if "refused" in cases:
            out["refused"] = Target(refused_endpoint(), None)
        if "blackholed" in cases:
            out["blackholed"] = Target(stack.enter_context(Blackhole()).endpoint, None)
        if "slow" in cases:
            slow = stack.enter_context(SlowReceiver(slow_s))
            out["slow"] = Target(slow.endpoint, slow.count)
        yield out


# ----------------------------------------------------------------- the table
def _median_range(values: list[float], fmt: str) -> tuple[str, str]:
    if not values:
        return "-", "-"
    return format(statistics.median(values), fmt), (
        f"{format(min(values), fmt)}-{format(max(values), fmt)}"
    )


def table(runs: Sequence[CaseRun], cases: Sequence[str]) -> str:
    good = {c: [r for r in runs if r.case == c and r.error is None] for c in cases}
    healthy = [r.ns_per_op / 1000 for r in good.get("healthy", []) if r.ns_per_op]
    healthy_median = statistics.median(healthy) if healthy else None
    lines = [
        "| collector | us/op median | min-max | vs healthy | exit s median | exit min-max "
        "| spans delivered/op | lost at exit (median) | runs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        mine = good[case]
        times = [r.ns_per_op / 1000 for r in mine if r.ns_per_op]
        median, spread = _median_range(times, ".1f")
        ratio = (
            f"{statistics.median(times) / healthy_median:.2f}x" if times and healthy_median else "-"
        )
        exit_median, exit_spread = _median_range(
            [r.exit_s for r in mine if r.exit_s is not None], ".2f"
        )
        delivered = [r.delivered / (r.ops + r.warmup) for r in mine if r.delivered is not None]
        delivered_text = f"{statistics.median(delivered):.2f}" if delivered else "-"
        lost = statistics.median([r.lost_at_exit for r in mine]) if mine else 0
        failed = sum(1 for r in runs if r.case == case and r.error)
        count = f"{len(mine)}" + (f" ({failed} failed)" if failed else "")
        lines.append(
            f"| {case} | {median} | {spread} | {ratio} | {exit_median} | {exit_spread} "
            f"| {delivered_text} | {lost:.0f} | {count} |"
        )
    return "\n".join(lines)


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.collector_down", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workload", default=DEFAULT_WORKLOAD, choices=sorted(WORKLOADS))
    parser.add_argument("--ops", type=int, default=None, help="default: the workload's size")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    parser.add_argument("--slow-seconds", type=float, default=DEFAULT_SLOW_S)
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results" / "collector_down.json",
        help="where the raw runs are written (JSON)",
    )
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        parser.error(f"unknown cases {unknown} (known: {', '.join(CASES)})")
    ops = max(1, args.ops or WORKLOADS[args.workload].ops)
    rounds = max(1, args.rounds)
    python = project_python()
    config = configurations()["otel_db"]

    print(
        f"collector down: {args.workload} x {ops} ops, cases {', '.join(cases)}, "
        f"{rounds} rounds; slow receiver answers after {args.slow_seconds:g} s",
        flush=True,
    )
    load_before = _loadavg()
    started = time.monotonic()
    runs: list[CaseRun] = []
    with targets(cases, args.slow_seconds) as where:
        for round_number in range(1, rounds + 1):
            shift = (round_number - 1) % len(cases)
            for case in cases[shift:] + cases[:shift]:
                run = run_case(case, where[case], config, args.workload, ops, round_number, python)
                runs.append(run)
                shown = (
                    f"{run.ns_per_op / 1000:8.1f} us/op, exit {run.exit_s:5.2f} s, "
                    f"lost at exit {run.lost_at_exit}"
                    if run.error is None and run.ns_per_op and run.exit_s is not None
                    else f"ERROR {run.error}"
                )
                print(f"round {round_number} {case:10} {shown}", flush=True)
    elapsed = time.monotonic() - started
    load_after = _loadavg()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "meta": {
                    "workload": args.workload,
                    "ops": ops,
                    "rounds": rounds,
                    "slow_seconds": args.slow_seconds,
                    "python": platform.python_version(),
                    "elapsed_s": elapsed,
                    "loadavg_before": load_before,
                    "loadavg_after": load_after,
                },
                "runs": [asdict(r) for r in runs],
            },
            indent=1,
        )
    )
    print()
    print(table(runs, cases))
    print(
        f"\n{len(runs)} runs in {elapsed:.0f} s; load average {load_before} before, "
        f"{load_after} after; raw runs in {args.output}"
    )
    failed = [r for r in runs if r.error]
    for run in failed[:10]:
        print(f"FAILED {run.case} round {run.round}: {run.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
