"""Volume run: 1,000,000 statements through otel_db's full pipeline, to a real receiver.

    python -m benchmarks.volume [--statements 1000000]

The parent starts the counting receiver, then runs the child under
``opentelemetry-instrument`` with otel_db as distro and configurator and every feature
on. The child runs SQLAlchemy Core statements on in-memory SQLite in blocks of 100
under an application span ("job"): 80 SELECTs on one connection (committed at the end
of the block) and a transaction of 20 UPDATEs (``engine.begin()``). It reports:

- peak RSS growth: ``VmHWM`` at the end minus ``VmRSS`` once warm (after the first
  2% of the statements: caches filled, export thread running), plus RSS samples;
- spans sent (every span the SDK ended, counted by a processor added beside otel_db's),
  spans the BatchSpanProcessor reported dropping ("Queue full" warnings), and, from
  the parent, spans the receiver got.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.configs import (
    PROJECT_ENV,
    REPO_ROOT,
    Configuration,
    every_feature_on,
    launcher_next_to,
)
from benchmarks.harness import ReceiverProcess, cell_environment

BLOCK = 100
SELECTS_PER_BLOCK = 80
_RESULT_PREFIX = "VOLUME_RESULT "
CHILD_TIMEOUT_S = 1800


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class _DropCounter(logging.Handler):
    """Counts the BatchSpanProcessor's "Queue full, dropping span." warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Queue full" in record.getMessage():
            self.dropped += 1


def child(statements: int) -> dict[str, Any]:
    import sqlalchemy as sa
    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

    class EndedCounter(SpanProcessor):
        def __init__(self) -> None:
            self.ended = 0
            self._lock = threading.Lock()

        def on_end(self, span: ReadableSpan) -> None:
            with self._lock:
                self.ended += 1

    provider = trace.get_tracer_provider()
    counter = EndedCounter()
    provider.add_span_processor(counter)  # type: ignore[attr-defined]
    drops = _DropCounter()
    logging.getLogger("opentelemetry.sdk._shared_internal").addHandler(drops)
    tracer = trace.get_tracer("otel_db.benchmarks.volume")

    engine = sa.create_engine("sqlite:///:memory:")
    metadata = sa.MetaData()
    table = sa.Table(
        "bench_volume",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, nullable=False),
    )
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [{"id": i, "n": 0} for i in range(1, 1001)])
    select = sa.select(table.c.n).where(table.c.id == sa.bindparam("id"))
    update = table.update().where(table.c.id == sa.bindparam("key")).values(n=table.c.n + 1)

    blocks = max(1, statements // BLOCK)
    warm_at = max(1, blocks // 50)
    samples: list[tuple[int, int]] = []
    baseline_kb = 0
    start = time.perf_counter()
    for block in range(blocks):
        with tracer.start_as_current_span("job"):
            with engine.connect() as connection:
                for k in range(SELECTS_PER_BLOCK):
                    connection.execute(select, {"id": (block + k) % 1000 + 1}).fetchall()
                connection.commit()
            with engine.begin() as connection:
                for k in range(BLOCK - SELECTS_PER_BLOCK):
                    connection.execute(update, {"key": (block * 7 + k) % 1000 + 1})
        if block + 1 == warm_at:
            baseline_kb = _status_kb("VmRSS")
        if (block + 1) % max(1, blocks // 10) == 0:
            samples.append(((block + 1) * BLOCK, _status_kb("VmRSS")))
    elapsed = time.perf_counter() - start
    peak_kb = _status_kb("VmHWM")
    ended_before_shutdown = counter.ended
    provider.shutdown()  # type: ignore[attr-defined]  # flushes the batch processor
    return {
        "statements": blocks * BLOCK,
        "elapsed_s": elapsed,
        "us_per_statement": elapsed / (blocks * BLOCK) * 1e6,
        "baseline_rss_kb": baseline_kb,
        "peak_rss_kb": peak_kb,
        "rss_growth_mb": (peak_kb - baseline_kb) / 1024,
        "rss_samples_kb": samples,
        "spans_sent": counter.ended,
        "spans_sent_before_shutdown": ended_before_shutdown,
        "bsp_dropped": drops.dropped,
    }


def parent(statements: int) -> dict[str, Any]:
    config = Configuration(
        "otel_db_full",
        "otel_db, every feature on",
        PROJECT_ENV,
        launcher=True,
        env={
            "OTEL_PYTHON_DISTRO": "otel_db",
            "OTEL_PYTHON_CONFIGURATOR": "otel_db",
            **every_feature_on(),
        },
    )
    with ReceiverProcess() as receiver:
        before = receiver.settled_count()["spans"]
        completed = subprocess.run(
            [
                str(launcher_next_to(Path(sys.executable))),
                sys.executable,
                "-m",
                "benchmarks.volume",
                "--child",
                "--statements",
                str(statements),
            ],
            cwd=REPO_ROOT,
            env={**cell_environment(config, receiver.endpoint), "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
        )
        received = receiver.settled_count()["spans"] - before
    lines = [line for line in completed.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise SystemExit(
            f"the volume child failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    result = json.loads(lines[-1][len(_RESULT_PREFIX) :])
    result["spans_received"] = received
    result["spans_lost"] = result["spans_sent"] - received
    warnings = [line for line in completed.stderr.splitlines() if "Queue full" not in line]
    result["child_stderr_tail"] = warnings[-5:]
    return result


def render(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"statements: {result['statements']:,} in {result['elapsed_s']:.0f} s "
            f"({result['us_per_statement']:.0f} us/statement, all features on)",
            f"RSS: {result['baseline_rss_kb'] / 1024:.1f} MB once warm, peak "
            f"{result['peak_rss_kb'] / 1024:.1f} MB: growth {result['rss_growth_mb']:.1f} MB",
            "RSS samples (statements, MB): "
            + ", ".join(f"{n // 1000}k:{kb / 1024:.0f}" for n, kb in result["rss_samples_kb"]),
            f"spans: sent {result['spans_sent']:,}, received {result['spans_received']:,}, "
            f"lost {result['spans_lost']:,} (BatchSpanProcessor 'Queue full' drops: "
            f"{result['bsp_dropped']:,})",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(_RESULT_PREFIX + json.dumps(child(args.statements)), flush=True)
        return 0
    result = parent(args.statements)
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
