"""Transparency job: the instrumented libraries' own test suites, plain and traced.

For SQLAlchemy, redis-py, psycopg2, pg8000 and mysql-connector-python this downloads
the sdist of the INSTALLED version
(``pip download --no-deps --no-binary :all:``), runs a chosen subset of its tests twice
(plain; then with ``otel_db.configure()`` run from a ``sitecustomize.py`` and every
feature on, spans going through the whole pipeline to an exporter that drops them),
and compares the outcome of every test. It fails on any test whose outcome differs,
unless tests/transparency/known_differences.txt lists it, and on any listed difference
that no longer differs (the list must stay true).

    python scripts/transparency.py [--only sqlalchemy-sqlite,redis] [--keep DIR]

Needs the services of scripts/test-services.sh (PostgreSQL, Redis, MariaDB on 127.0.0.1).
Prints per suite the counts, the spans the traced run made (a traced run that made none
measured nothing, and fails the job) and the traced/plain wall-time and CPU-time ratios.
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
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "tests" / "transparency" / "site"
#: pytest plugins a suite needs in both runs (how it finds its server).
PLUGINS = REPO / "tests" / "transparency" / "plugins"
KNOWN = REPO / "tests" / "transparency" / "known_differences.txt"

POSTGRES = os.environ.get("OTEL_DB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("OTEL_DB_TRANSPARENCY_REDIS_URL", "redis://127.0.0.1:6379/9")
MARIADB = urlsplit(os.environ.get("OTEL_DB_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306/test"))
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
    #: Modules of tests/transparency/plugins loaded (``-p``) in both runs.
    plugins: tuple[str, ...] = ()


#: Options of the suites' arguments that take a separate value.
_VALUED = ("--dburi", "-k", "-p", "-W")

_COMMON = ("-p", "no:cacheprovider", "-q", "--tb=line")


#: pg8000's three interfaces: DB-API (pg8000.dbapi), legacy (pg8000.connect), native
#: (pg8000.native.Connection.run).
_PG8000_MODULES = {
    "dbapi": "test_connection test_dbapi test_dbapi20 test_query test_copy test_paramstyle",
    "native": "test_connection test_query test_copy test_prepared_statement test_import_all",
    "legacy": "test_connection test_dbapi test_dbapi20 test_query test_copy"
    " test_error_recovery test_prepared_statement test_typeobjects",
}

#: test_max_parameters sends 65,535 parameters (a minute; the rest of the suite takes
#: 20 s); the others need pytest-mock.
_PG8000_DESELECTED = (
    "native/test_query.py::test_max_parameters",
    "dbapi/test_connection.py::test_py_value_fail",
    "native/test_connection.py::test_py_value_fail",
    "legacy/test_error_recovery.py::test_py_value_fail",
    "dbapi/test_query.py::test_not_parsed_if_no_params",
    "native/test_query.py::test_not_parsed_if_no_params",
    "legacy/test_query.py::test_not_parsed_if_no_params",
    "dbapi/test_dbapi.py::test_qmark",
    "dbapi/test_dbapi.py::test_numeric",
    "dbapi/test_dbapi.py::test_named",
    "dbapi/test_dbapi.py::test_format",
    "dbapi/test_dbapi.py::test_pyformat",
)


def _sqlalchemy(name: str, dburi: str, *selection: str) -> Suite:
    return Suite(
        name,
        "sqlalchemy",
        "SQLAlchemy",
        (*_COMMON, "--maxfail=1000", "--dburi", dburi, *selection),
        # -s: SQLAlchemy's conftest puts the sdist's lib/ first on sys.path unless the
        # user site is off; the installed package (with its compiled parts) is the one
        # the application runs, so that is the one tested.
        python_flags=("-s",),
    )


SUITES = (
    _sqlalchemy(
        "sqlalchemy-sqlite",
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
    _sqlalchemy(
        "sqlalchemy-postgresql",
        POSTGRES.replace("postgresql://", "postgresql+psycopg2://", 1),
        "test/engine/test_transaction.py",
        "test/orm/test_transaction.py",
    ),
    _sqlalchemy(
        "sqlalchemy-asyncpg",
        POSTGRES.replace("postgresql://", "postgresql+asyncpg://", 1),
        "test/ext/asyncio/test_engine.py",
        "test/ext/asyncio/test_session.py",
    ),
    Suite(
        "redis",
        "redis",
        "redis",
        (
            *_COMMON,
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
            *_COMMON,
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
    Suite(
        "pg8000",
        "pg8000",
        "pg8000",
        (
            *_COMMON,
            *(
                f"test/{interface}/{module}.py"
                for interface, modules in _PG8000_MODULES.items()
                for module in modules.split()
            ),
            *(f"--deselect=test/{test}" for test in _PG8000_DESELECTED),
        ),
        env={
            "PGHOST": urlsplit(POSTGRES).hostname or "127.0.0.1",
            "PGPORT": str(urlsplit(POSTGRES).port or 5432),
            "PGPASSWORD": urlsplit(POSTGRES).password or "",
            "PGDATABASE": urlsplit(POSTGRES).path.lstrip("/") or "test",
        },
        # src/ is pg8000 itself: the installed one is tested.
        drop=("src",),
        plugins=("transparency_pg8000",),
    ),
    Suite(
        "mysql-connector",
        "mysql-connector-python",
        "mysql-connector-python",
        (
            *_COMMON,
            "-W",
            "ignore::DeprecationWarning",
            "tests/test_connection.py",
            "tests/test_cursor.py",
            "tests/test_pep249.py",
            "tests/test_pooling.py",
            "tests/test_errors.py",
            "tests/test_examples.py",
            "tests/test_bugs.py",
            # Tests that sleep (a 15 s query, connect and read timeouts, 100-sample
            # garbage-collection counts): two thirds of the modules' time.
            "-k",
            "not (BugOra25558885 or BugOra13435186 or BugOra36922645 or BugOra27364914"
            " or test_reconnect or test_connect_timeout or test_timeout)",
            # Counts the server's global Aborted_clients, which any other client of the
            # shared server moves between its two reads.
            "--deselect=tests/test_connection.py::MySQLConnectionTests::test_shutdown",
        ),
        env={
            "MYSQL_HOST": MARIADB.hostname or "127.0.0.1",
            "MYSQL_PORT": str(MARIADB.port or 3306),
            "MYSQL_USER": MARIADB.username or "root",
            "MYSQL_PASSWORD": MARIADB.password or "",
            "MYSQL_DATABASE": MARIADB.path.lstrip("/") or "test",
        },
        # (lib/ is the sdist's mysql package; it is not on sys.path, and the sdist's
        # cpydist, imported by the tests, reads its version.py: kept.)
        plugins=("transparency_mysql_connector",),
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


@dataclass
class Run:
    """One run of a suite: each test's outcome, its wall and CPU seconds, and (traced)
    the spans it made per instrumentation scope."""

    outcomes: dict[str, str]
    wall_s: float
    cpu_s: float
    spans: dict[str, int]


def _run(
    suite: Suite,
    source: Path,
    out: Path,
    *,
    traced: bool,
    only: list[str] | None = None,
    node_ids: dict[str, str] | None = None,
) -> Run:
    """Run the suite (or just the tests ``only`` names) plain or traced."""
    tag = f"{suite.name}-{'traced' if traced else 'plain'}{'-rerun' if only else ''}"
    junit = out / f"{tag}.xml"
    span_counts = out / f"{tag}.spans"
    span_counts.unlink(missing_ok=True)
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("OTEL_", "PYTEST_")):
            del env[name]
    env.update(suite.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    paths = [str(PLUGINS)] if suite.plugins else []
    if traced:
        env.update(TRACED_ENV)
        env["OTEL_DB_TRANSPARENCY_SPANS"] = str(span_counts)
        paths.insert(0, str(SITE))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(
            [*paths, *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
        )
    # A rerun keeps the options and swaps the suite's files for the tests to confirm.
    args = [a for a in suite.args if a.startswith("-") or a in _option_values(suite.args)]
    selection = list(suite.args) if only is None else [*args, *only]
    plugins = [arg for name in suite.plugins for arg in ("-p", name)]
    command = [
        sys.executable, *suite.python_flags, "-m", "pytest", *plugins, *selection,
        f"--junitxml={junit}", "-o", "junit_family=xunit1",
    ]  # fmt: skip
    started = time.monotonic()
    cpu_before = _children_cpu()
    with junit.with_suffix(".log").open("w") as sink:
        try:
            subprocess.run(
                command, cwd=source, env=env, stdout=sink, stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            sink.write(f"\nTIMEOUT after {RUN_TIMEOUT_S}s\n")
    return Run(
        _outcomes(junit, node_ids),
        time.monotonic() - started,
        _children_cpu() - cpu_before,
        _span_counts(span_counts),
    )


def _span_counts(path: Path) -> dict[str, int]:
    """Spans per instrumentation scope, summed over the lines every traced interpreter
    appended (``scope<TAB>count``; see tests/transparency/site/sitecustomize.py)."""
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    for line in path.read_text().splitlines():
        scope, _, count = line.rpartition("\t")
        if scope and count.isdigit():
            counts[scope] = counts.get(scope, 0) + int(count)
    return counts


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


def _compare(
    suite: Suite, source: Path, out: Path, listed: set[str]
) -> tuple[str, dict[str, tuple[str, str]], Run, Run]:
    """Both runs of a suite; the tests whose outcome differs (after a rerun of the
    unlisted ones); a one-line summary."""
    node_ids: dict[str, str] = {}
    plain = _run(suite, source, out, traced=False, node_ids=node_ids)
    traced = _run(suite, source, out, traced=True)
    differing = {
        test: (plain.outcomes.get(test, "absent"), traced.outcomes.get(test, "absent"))
        for test in sorted(set(plain.outcomes) | set(traced.outcomes))
        if plain.outcomes.get(test) != traced.outcomes.get(test)
    }
    # A difference nobody listed is confirmed by running those tests again, both ways:
    # a timing-bound test (a child process given 10 s on a loaded machine) must not
    # fail the job, a real difference differs again.
    unlisted = [node_ids[t] for t in differing if t not in listed and t in node_ids]
    if unlisted and plain.outcomes and traced.outcomes:
        again = [_run(suite, source, out, traced=way, only=unlisted) for way in (False, True)]
        for test in list(differing):
            if test in listed or test not in node_ids:
                continue
            if again[0].outcomes.get(test) == again[1].outcomes.get(test) is not None:
                print(f"  {suite.name}: {test}: differed once, not on a rerun (flaky)")
                del differing[test]
    counts = {
        o: sum(1 for v in plain.outcomes.values() if v == o)
        for o in sorted(set(plain.outcomes.values()))
    }
    summary = (
        f"{len(plain.outcomes)} tests {counts}; "
        f"plain {plain.wall_s:.1f}s, traced {traced.wall_s:.1f}s, "
        f"ratio {traced.wall_s / max(plain.wall_s, 0.01):.2f}; "
        f"CPU plain {plain.cpu_s:.1f}s, traced {traced.cpu_s:.1f}s, "
        f"ratio {traced.cpu_s / max(plain.cpu_s, 0.01):.2f}; "
        f"spans {sum(traced.spans.values())} {dict(sorted(traced.spans.items()))}; "
        f"differing {len(differing)}, known {len(listed & set(differing))}"
    )
    return summary, differing, plain, traced


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
        listed = {test for (name, test) in known if name == suite.name}
        summary, differing, plain, traced = _compare(suite, source, out, listed)
        print(f"{suite.name} {version}: {summary}")
        if not plain.outcomes or not traced.outcomes:
            problems.append(f"{suite.name}: a run reported no tests (see {out})")
            continue
        if not traced.spans:
            problems.append(f"{suite.name}: the traced run made no span: nothing was measured")
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
