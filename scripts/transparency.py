"""Transparency job: the instrumented libraries' own test suites, plain and traced.

For SQLAlchemy, redis-py and psycopg2 this downloads the sdist of the INSTALLED version
(``pip download --no-deps --no-binary :all:``), runs a chosen subset of its tests twice
(plain; then with ``otel_db.configure()`` run from a ``sitecustomize.py`` and every
feature on, spans going through the whole pipeline to an exporter that drops them),
and compares the outcome of every test. It fails on any test whose outcome differs,
unless tests/transparency/known_differences.txt lists it, and on any listed difference
that no longer differs (the list must stay true).

    python scripts/transparency.py [--only sqlalchemy-sqlite,redis] [--keep DIR]

Needs the services of scripts/test-services.sh (PostgreSQL, Redis on 127.0.0.1).
Prints per suite the counts and the traced/plain wall-time and CPU-time ratios.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "tests" / "transparency" / "site"
KNOWN = REPO / "tests" / "transparency" / "known_differences.txt"

POSTGRES = os.environ.get("OTEL_DB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("OTEL_DB_TRANSPARENCY_REDIS_URL", "redis://127.0.0.1:6379/9")
#: Longest a single suite run may take (each run is killed beyond it and counts as failed).
RUN_TIMEOUT_S = 300

#: Every otel_db feature on for the traced run (the defaults already turn some on).
TRACED_ENV = {
    "OTEL_DB_TRANSPARENCY_TRACED": "1",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_SERVICE_NAME": "otel-db-transparency",
    "OTEL_PYTHON_DB_SQLCOMMENTER": "true",
    "OTEL_PYTHON_DB_CAPTURE_PARAMETERS": "true",
    "OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES": "true",
    "OTEL_PYTHON_DB_TRANSACTION_SPANS": "true",
    "OTEL_PYTHON_DB_POOL_ATTRIBUTES": "true",
    "OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS": "50",
    "PYTEST_PLUGINS": "otel_db_transparency_plugin",
}


@dataclass(frozen=True)
class Suite:
    name: str
    distribution: str  # what is installed (its version picks the sdist)
    sdist: str  # the name to download (psycopg2-binary ships the same tests)
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    #: Path prefixes removed from the unpacked sdist so the INSTALLED package is tested.
    drop: tuple[str, ...] = ()
    python_flags: tuple[str, ...] = ()


#: Options of the suites' arguments that take a separate value.
_VALUED = ("--dburi", "-k", "-p")

_SQLA_COMMON = ("-p", "no:cacheprovider", "-q", "--tb=line", "--maxfail=1000")

SUITES = (
    Suite(
        "sqlalchemy-sqlite",
        "sqlalchemy",
        "SQLAlchemy",
        (
            *_SQLA_COMMON,
            "--dburi",
            "sqlite://",
            "test/engine/test_execute.py",
            "test/engine/test_pool.py",
            "test/engine/test_transaction.py",
            "test/engine/test_deprecations.py",
            "test/base/test_concurrency.py",
            "test/orm/test_transaction.py",
            # Pool tests that only sleep through races and timeouts (a third of the
            # module's time); the other pool tests cover the same paths.
            "-k",
            "not (test_recycle_pool_no_race or test_timeout_race or test_hanging_connect"
            " or test_notify_waiters or test_timeout)",
        ),
        # -s: SQLAlchemy's conftest puts the sdist's lib/ first on sys.path unless the
        # user site is off; the installed package (with its compiled parts) is the one
        # the application runs, so that is the one tested.
        python_flags=("-s",),
    ),
    Suite(
        "sqlalchemy-postgresql",
        "sqlalchemy",
        "SQLAlchemy",
        (
            *_SQLA_COMMON,
            "--dburi",
            POSTGRES.replace("postgresql://", "postgresql+psycopg2://", 1),
            "test/engine/test_transaction.py",
            "test/orm/test_transaction.py",
        ),
        python_flags=("-s",),
    ),
    Suite(
        "sqlalchemy-asyncpg",
        "sqlalchemy",
        "SQLAlchemy",
        (
            *_SQLA_COMMON,
            "--dburi",
            POSTGRES.replace("postgresql://", "postgresql+asyncpg://", 1),
            "test/ext/asyncio/test_engine.py",
            "test/ext/asyncio/test_session.py",
        ),
        python_flags=("-s",),
    ),
    Suite(
        "redis",
        "redis",
        "redis",
        (
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=line",
            f"--redis-url={REDIS}",
            "tests/test_pipeline.py",
            "tests/test_connection_pool.py",
            "tests/test_connection.py",
        ),
    ),
    Suite(
        "psycopg2",
        "psycopg2-binary",
        "psycopg2-binary",
        (
            "-p",
            "no:cacheprovider",
            "-q",
            "--tb=line",
            "tests/test_connection.py",
            "tests/test_cursor.py",
            "tests/test_extras_dictcursor.py",
            "tests/test_transaction.py",
            "tests/test_with.py",
        ),
        env={
            "PSYCOPG2_TESTDB": "test",
            "PSYCOPG2_TESTDB_HOST": "127.0.0.1",
            "PSYCOPG2_TESTDB_USER": "postgres",
        },
        # The sdist's lib/ is psycopg2's Python part: the installed one is tested.
        drop=("lib",),
    ),
)


def _option_values(args: tuple[str, ...]) -> set[str]:
    """The arguments that are option values, not test files (kept on a rerun)."""
    return {value for before, value in itertools.pairwise(args) if before in _VALUED}


def _installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _unpack(suite: Suite, version: str, work: Path) -> Path:
    target = work / f"{suite.sdist}-{version}"
    if target.exists():
        return target
    downloads = work / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    archives = [p for p in downloads.iterdir() if p.name.lower().startswith(_norm(suite.sdist))]
    archives = [p for p in archives if version in p.name]
    if not archives:
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--no-binary", ":all:", "-d", str(downloads),
                f"{suite.sdist}=={version}",
            ],
            check=True,
        )  # fmt: skip
        archives = [
            p for p in downloads.iterdir()
            if p.name.lower().startswith(_norm(suite.sdist)) and version in p.name
        ]  # fmt: skip
    with tarfile.open(archives[0]) as archive:
        root = archive.getnames()[0].split("/", 1)[0]
        archive.extractall(work / "unpacked", filter="data")
    shutil.move(str(work / "unpacked" / root), str(target))
    for prefix in suite.drop:
        shutil.rmtree(target / prefix, ignore_errors=True)
    return target


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


# SQLAlchemy names test classes after the backend (``TransactionTest_sqlite+pysqlite_3_40_1``):
# the list must not depend on the machine's SQLite or server version.
_BACKEND_SUFFIX = re.compile(r"_(sqlite|postgresql|mysql|mariadb)\+\w+?(_[0-9_]+)?$")


def _outcomes(junit: Path, node_ids: dict[str, str] | None = None) -> dict[str, str]:
    """test id -> outcome; ``node_ids`` (if given) gets test id -> pytest node id."""
    found: dict[str, str] = {}
    if not junit.exists():
        return found
    for case in ET.parse(junit).getroot().iter("testcase"):
        raw = case.get("classname", "")
        module, _, cls = raw.rpartition(".")
        classname = raw
        if cls and cls[:1].isupper():
            classname = f"{module}.{_BACKEND_SUFFIX.sub('', cls)}"
        test_id = f"{classname}::{case.get('name')}"
        if node_ids is not None:
            # From the dotted class name: SQLAlchemy's generated classes say "<string>"
            # in the ``file`` attribute.
            is_class = bool(cls) and cls[:1].isupper()
            path = (module if is_class else raw).replace(".", "/") + ".py"
            # SQLAlchemy's per-backend classes are addressed by the class's own name.
            owner = f"::{_BACKEND_SUFFIX.sub('', cls)}" if is_class else ""
            node_ids[test_id] = f"{path}{owner}::{case.get('name')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed" if child.tag == "failure" else "error"
                break
            if child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        # A test can appear twice (call and teardown error): the worse outcome wins.
        if found.get(test_id) in ("failed", "error"):
            continue
        found[test_id] = outcome
    return found


def _run(
    suite: Suite,
    source: Path,
    traced: bool,
    out: Path,
    only: list[str] | None = None,
    node_ids: dict[str, str] | None = None,
) -> tuple[dict[str, str], float, float]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("OTEL_", "PYTEST_")):
            del env[name]
    env.update(suite.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if traced:
        env.update(TRACED_ENV)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(SITE), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
    tag = f"{'traced' if traced else 'plain'}{'-rerun' if only else ''}"
    junit = out / f"{suite.name}-{tag}.xml"
    log = junit.with_suffix(".log")
    # A rerun keeps the options and swaps the suite's files for the tests to confirm.
    args = [a for a in suite.args if a.startswith("-") or a in _option_values(suite.args)]
    selection = list(suite.args) if only is None else [*args, *only]
    command = [
        sys.executable, *suite.python_flags, "-m", "pytest", *selection,
        f"--junitxml={junit}", "-o", "junit_family=xunit1",
    ]  # fmt: skip
    started = time.monotonic()
    cpu_before = _children_cpu()
    with log.open("w") as sink:
        try:
            subprocess.run(
                command, cwd=source, env=env, stdout=sink, stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            sink.write(f"\nTIMEOUT after {RUN_TIMEOUT_S}s\n")
    elapsed = time.monotonic() - started
    return _outcomes(junit, node_ids), elapsed, _children_cpu() - cpu_before


def _children_cpu() -> float:
    """CPU seconds of finished child processes: unlike wall time, hardly moved by other
    work on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _load_known() -> dict[tuple[str, str], str]:
    """``suite | test id | reason | upstream`` lines; ``#`` starts a comment."""
    known: dict[tuple[str, str], str] = {}
    for raw in KNOWN.read_text().splitlines():
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if not line:
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) < 3:
            raise SystemExit(f"{KNOWN}: malformed line: {raw!r}")
        known[(parts[0], parts[1])] = parts[2]
    return known


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", default="", help="comma-separated suite names")
    parser.add_argument("--keep", default="", help="work directory to keep (default: temp)")
    options = parser.parse_args(argv)
    wanted = {name for name in options.only.split(",") if name}
    suites = [s for s in SUITES if not wanted or s.name in wanted]
    work = Path(options.keep) if options.keep else Path(tempfile.mkdtemp(prefix="otel-db-tr-"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "results"
    out.mkdir(exist_ok=True)
    known = _load_known()
    problems: list[str] = []
    started = time.monotonic()
    for suite in suites:
        version = _installed_version(suite.distribution)
        if version is None:
            problems.append(f"{suite.name}: {suite.distribution} is not installed")
            continue
        source = _unpack(suite, version, work)
        node_ids: dict[str, str] = {}
        plain, plain_s, plain_cpu = _run(suite, source, False, out, node_ids=node_ids)
        traced, traced_s, traced_cpu = _run(suite, source, True, out)
        if not plain or not traced:
            problems.append(f"{suite.name}: a run reported no tests (see {out})")
            continue
        differing = {
            test: (plain.get(test, "absent"), traced.get(test, "absent"))
            for test in sorted(set(plain) | set(traced))
            if plain.get(test) != traced.get(test)
        }
        listed = {test for (name, test) in known if name == suite.name}
        # A difference nobody listed is confirmed by running those tests again, both
        # ways: a timing-bound test (a child process given 10 s on a loaded machine)
        # must not fail the job, a real difference differs again.
        unlisted = [node_ids[t] for t in differing if t not in listed and t in node_ids]
        if unlisted:
            again_plain = _run(suite, source, False, out, only=unlisted)[0]
            again_traced = _run(suite, source, True, out, only=unlisted)[0]
            for test in list(differing):
                if test in listed or test not in node_ids:
                    continue
                if again_plain.get(test) == again_traced.get(test) is not None:
                    print(f"  {suite.name}: {test}: differed once, not on a rerun (flaky)")
                    del differing[test]
        counts = {o: sum(1 for v in plain.values() if v == o) for o in sorted(set(plain.values()))}
        print(
            f"{suite.name} {version}: {len(plain)} tests {counts}; "
            f"plain {plain_s:.1f}s, traced {traced_s:.1f}s, "
            f"ratio {traced_s / plain_s:.2f}; CPU plain {plain_cpu:.1f}s, traced "
            f"{traced_cpu:.1f}s, ratio {traced_cpu / max(plain_cpu, 0.01):.2f}; "
            f"differing {len(differing)}, "
            f"known {len(listed & set(differing))}"
        )
        for test, (was, now) in differing.items():
            if test not in listed:
                problems.append(f"{suite.name}: {test}: plain {was}, traced {now}")
        for test in sorted(listed - set(differing)):
            problems.append(
                f"{suite.name}: {test} is listed as a known difference but no longer differs"
                " (remove it from the list)"
            )
    print(f"transparency job: {time.monotonic() - started:.0f}s in all")
    if problems:
        print("\nTRANSPARENCY FAILED:", *problems, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
