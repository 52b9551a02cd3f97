"""What statement analysis costs on the application thread: cached, cold, and huge.

    python -m benchmarks.sanitizer [--quick]

- cached: ``analyze_statement`` on texts it has seen (the usual case), without and
  with a ``db.system.name``;
- cold: the same statements with a literal never seen before;
- large (issue 16): a 2,000- and a 50,000-item IN list, 10,000 nested parentheses,
  10,000 literal VALUES rows, and the worst cases for the caps (1 MB of ``(``, of
  ``'``, of ``a``, a statement that makes every dialect reading differ);
- memory: 64 distinct 1 MB statements analysed, then what the process still holds.

Each timing is the median of several repeats (min in brackets), in microseconds, of
``time.perf_counter_ns``; CPU time is what the benchmark reports in the README.
The script uses only ``analyze_statement(text)``, so it also runs against an older
otel_db (``PYTHONPATH=<old>/src``) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import inspect
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

from otel_db.sql import analysis
from otel_db.sql.analysis import analyze_statement

_TAKES_SYSTEM = "system" in inspect.signature(analyze_statement).parameters

CACHED = [
    "SELECT id, name FROM users WHERE id = {n}",
    (
        "SELECT users.id AS users_id, users.name AS users_name, orders.id AS orders_id, "
        "orders.total AS orders_total FROM users JOIN orders ON orders.user_id = users.id "
        "WHERE users.id = {n} AND orders.status = 'paid' AND orders.created_at > "
        "'2024-01-01' ORDER BY orders.created_at DESC LIMIT 10 OFFSET 0"
    ),
]


def _ids(count: int) -> str:
    return ", ".join(str(random.randrange(10**9)) for _ in range(count))


def large_statements() -> dict[str, Callable[[], str]]:
    """Name -> a function making a new (never cached) text of that shape."""
    return {
        "IN list, 2,000 ids": lambda: f"SELECT * FROM t WHERE id IN ({_ids(2000)}) ORDER BY id",
        "IN list, 50,000 ids": lambda: f"SELECT * FROM t WHERE id IN ({_ids(50000)}) ORDER BY id",
        "IN list, 10,000 %(name)s": lambda: (
            f"SELECT * FROM t /* {random.random()} */ WHERE id IN ("
            + ", ".join(f"%(id_1_{i})s" for i in range(10000))
            + ")"
        ),
        "10,000 nested parentheses": lambda: (
            f"SELECT {random.random()} + " + "(" * 10000 + "1" + ")" * 10000
        ),
        "VALUES, 10,000 literal rows": lambda: (
            "INSERT INTO t VALUES "
            + ", ".join(f"({random.randrange(10**9)}, 'v{i}', NULL)" for i in range(10000))
        ),
        "1 MB of '('": lambda: f"/* {random.random()} */" + "(" * 1_000_000,
        "1 MB of quotes": lambda: f"/* {random.random()} */" + "'" * 1_000_000,
        "1 MB of 'a '": lambda: f"/* {random.random()} */" + "a " * 500_000,
        "1.3 MB, every reading differs": lambda: (
            f"/* {random.random()} */"
            + "SELECT \"a\" # x\n, $$ 'q' $$ /* /* */ */ -- y\n, 'C:\\' " * 25000
        ),
    }


def _median_min(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples), min(samples)


def bench_cached(count: int, repeats: int) -> dict[str, tuple[float, float]]:
    out = {}
    for index, template in enumerate(CACHED):
        texts = [template.replace("{n}", str(i)) for i in range(50)]
        systems = [None, "postgresql"] if _TAKES_SYSTEM else [None]
        for system in systems:
            args = (system,) if system else ()
            for text in texts:
                analyze_statement(text, *args)
            samples = []
            for _ in range(repeats):
                start = time.perf_counter_ns()
                for _ in range(count // len(texts)):
                    for text in texts:
                        analyze_statement(text, *args)
                elapsed = time.perf_counter_ns() - start
                samples.append(elapsed / ((count // len(texts)) * len(texts)) / 1000)
            label = f"cached, statement {index + 1} ({len(texts[0])} chars)"
            out[label + (f", system={system}" if system else "")] = _median_min(samples)
    return out


def bench_cold(count: int, repeats: int) -> dict[str, tuple[float, float]]:
    out = {}
    serial = iter(range(10**12))
    for index, template in enumerate(CACHED):
        samples = []
        for _ in range(repeats):
            texts = [template.replace("{n}", str(next(serial))) for _ in range(count)]
            start = time.perf_counter_ns()
            for text in texts:
                analyze_statement(text)
            samples.append((time.perf_counter_ns() - start) / count / 1000)
        out[f"cold, statement {index + 1} ({len(template)} chars)"] = _median_min(samples)
    return out


def bench_large(repeats: int) -> dict[str, tuple[float, float]]:
    out = {}
    for name, make in large_statements().items():
        samples, cpu = [], []
        for _ in range(repeats):
            text = make()
            start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
            analyze_statement(text)
            samples.append((time.perf_counter_ns() - start) / 1000)
            cpu.append((time.process_time_ns() - start_cpu) / 1000)
        out[f"large: {name}"] = _median_min(samples)
        out[f"large: {name} (CPU)"] = _median_min(cpu)
    return out


def bench_memory(statements: int) -> dict[str, tuple[float, float]]:
    """KB still allocated after analysing ``statements`` distinct 1 MB statements."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(statements):
        text = (
            f"SELECT /* {n} */ * FROM t WHERE id IN ("
            + "1, " * 150_000
            + "2) -- "
            + "x" * (600_000)
        )
        analyze_statement(text)
        del text
    retained = (tracemalloc.get_traced_memory()[0] - before) / 1024
    tracemalloc.stop()
    cache = getattr(analysis, "_large_cache", None)
    before_issue_16 = cache is None
    entries = analysis._analyze_large.cache_info().currsize if before_issue_16 else len(cache)
    return {
        f"memory: {statements} distinct 1 MB statements, KB retained": (retained, retained),
        "memory: large-statement cache entries": (entries, entries),
    }


def run(quick: bool = False) -> dict[str, dict[str, tuple[float, float]]]:
    repeats = 3 if quick else 7
    return {
        "cached": bench_cached(2000 if quick else 50000, repeats),
        "cold": bench_cold(50 if quick else 500, repeats),
        "large": bench_large(2 if quick else 5),
        "memory": bench_memory(4 if quick else 64),
    }


def render(results: dict[str, dict[str, tuple[float, float]]]) -> str:
    lines = ["| measure | median us | min us |", "|---|---|---|"]
    for rows in results.values():
        for name, (median, low) in rows.items():
            lines.append(f"| {name} | {median:.2f} | {low:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, analyze_statement takes system: {_TAKES_SYSTEM}")
    print(render(run(quick=args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
