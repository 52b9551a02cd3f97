"""The configurations each workload runs under, and the workloads' default sizes."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKLOAD_SCRIPT = REPO_ROOT / "benchmarks" / "workload.py"

PROJECT_ENV = "project"
CONTRIB_ENV = "contrib"


@dataclass(frozen=True)
class Configuration:
    name: str
    description: str
    environment: str  # PROJECT_ENV or CONTRIB_ENV: which virtualenv runs the workload
    launcher: bool  # under opentelemetry-instrument, or plain python
    env: dict[str, str] = field(default_factory=dict)
    #: The contrib configuration this one's "vs contrib" ratios are taken against: the
    #: one exporting the same signals.
    compare_to: str = "contrib"

    @property
    def traced(self) -> bool:
        return self.launcher


@dataclass(frozen=True)
class WorkloadSize:
    ops: int
    quick_ops: int


#: Operations per timed loop, sized so the traced cells take about a second each.
WORKLOADS: dict[str, WorkloadSize] = {
    "sa_sqlite": WorkloadSize(4000, 150),
    "sa_sqlite_connect": WorkloadSize(3000, 100),
    "orm_pg": WorkloadSize(1500, 60),
    "orm_pg_session": WorkloadSize(1000, 40),
    "async_pg": WorkloadSize(1500, 60),
    "psycopg2": WorkloadSize(3000, 100),
    "redis_get": WorkloadSize(3000, 100),
    "redis_pipeline": WorkloadSize(1000, 40),
    "tx10_pg": WorkloadSize(300, 15),
    "pg8000": WorkloadSize(3000, 100),
    "mysql_connector": WorkloadSize(3000, 100),
}

WORKLOAD_DESCRIPTIONS = {
    "sa_sqlite": "SQLAlchemy Core, SQLite :memory:, one connection reused",
    "sa_sqlite_connect": "same, engine.connect() per statement (pool checkout)",
    "orm_pg": "ORM select by PK on PostgreSQL, one long session",
    "orm_pg_session": "same, one Session (BEGIN/ROLLBACK) per select",
    "async_pg": "async engine (asyncpg) on PostgreSQL, text() select",
    "psycopg2": "raw psycopg2 cursor.execute, autocommit",
    "redis_get": "redis GET",
    "redis_pipeline": "redis pipeline (MULTI/EXEC) of 10 GETs, per pipeline",
    "tx10_pg": "transaction of 10 UPDATEs (SQLAlchemy Core, PostgreSQL), per transaction",
    "pg8000": "raw pg8000 (DB-API) cursor.execute, autocommit; contrib: dbapi trace_integration",
    "mysql_connector": "raw mysql-connector cursor.execute (MariaDB), autocommit",
}

#: Workloads on raw drivers and Redis (the rest run through SQLAlchemy).
RAW_WORKLOADS = frozenset({"psycopg2", "redis_get", "pg8000", "mysql_connector"})

#: The issue's targets: otel_db_full against contrib, in each metrics configuration.
TARGETS: dict[str, float] = {
    "sa_sqlite": 0.70,
    "sa_sqlite_connect": 0.70,
    "orm_pg": 0.70,
    "orm_pg_session": 0.70,
    "async_pg": 0.70,
    "tx10_pg": 0.70,
    "psycopg2": 1.00,
    "redis_get": 1.00,
    "redis_pipeline": 1.10,
    "pg8000": 1.00,
    "mysql_connector": 1.00,
}

#: Traces only: what a user who exports no metrics runs.
TRACES_ONLY = {"OTEL_METRICS_EXPORTER": "none"}

#: Every otel_db feature that can be switched on, whether the defaults have it or not.
#: Derived from the settings so a feature added later is switched on without an edit here.
_FALLBACK_FULL = {
    "OTEL_PYTHON_DB_SANITIZE_QUERIES": "true",
    "OTEL_PYTHON_DB_CAPTURE_PARAMETERS": "true",
    "OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES": "true",
    "OTEL_PYTHON_DB_SQLCOMMENTER": "true",
    "OTEL_PYTHON_DB_TRANSACTION_SPANS": "true",
    "OTEL_PYTHON_DB_POOL_ATTRIBUTES": "true",
}


def every_feature_on() -> dict[str, str]:
    """``OTEL_PYTHON_DB_*=true`` for every boolean otel_db setting (numeric ones keep
    their defaults, which already enable them: N+1 threshold 5, slow threshold 500 ms)."""
    try:
        from otel_db import environment_variables
        from otel_db.settings import Settings

        defaults = Settings()
        out = {}
        for variable in dir(environment_variables):
            if not variable.startswith("OTEL_PYTHON_DB_"):
                continue
            setting = variable.removeprefix("OTEL_PYTHON_DB_").lower()
            if isinstance(getattr(defaults, setting, None), bool):
                out[getattr(environment_variables, variable)] = "true"
        if defaults.n_plus_one_threshold == 0:
            out["OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD"] = "5"
        return out or dict(_FALLBACK_FULL)
    except Exception:
        return dict(_FALLBACK_FULL)


_OTEL_DB = {"OTEL_PYTHON_DISTRO": "otel_db", "OTEL_PYTHON_CONFIGURATOR": "otel_db"}
_CONTRIB = {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator"}


def configurations() -> dict[str, Configuration]:
    return {
        "untraced": Configuration(
            "untraced", "no tracing, project environment", PROJECT_ENV, launcher=False
        ),
        "untraced_contrib": Configuration(
            "untraced_contrib", "no tracing, contrib environment", CONTRIB_ENV, launcher=False
        ),
        "contrib": Configuration(
            "contrib",
            "opentelemetry-distro + contrib instrumentations",
            CONTRIB_ENV,
            launcher=True,
            env=dict(_CONTRIB),
        ),
        "contrib_traces": Configuration(
            "contrib_traces",
            "contrib, traces only (OTEL_METRICS_EXPORTER=none)",
            CONTRIB_ENV,
            launcher=True,
            env={**_CONTRIB, **TRACES_ONLY},
            compare_to="contrib_traces",
        ),
        # The same contrib stack asked for what otel_db's distro turns on: the stable
        # database conventions, under which contrib's DB-API instrumentations also record
        # their duration and returned-rows histograms per statement. It shows how much of
        # otel_db's cost over `contrib` is that metric work rather than otel_db's own.
        "contrib_stable": Configuration(
            "contrib_stable",
            "contrib, OTEL_SEMCONV_STABILITY_OPT_IN=database (its DB metrics on)",
            CONTRIB_ENV,
            launcher=True,
            env={
                "OTEL_PYTHON_DISTRO": "distro",
                "OTEL_PYTHON_CONFIGURATOR": "configurator",
                "OTEL_SEMCONV_STABILITY_OPT_IN": "database",
            },
        ),
        "otel_db": Configuration(
            "otel_db", "otel_db defaults", PROJECT_ENV, launcher=True, env=dict(_OTEL_DB)
        ),
        "otel_db_full": Configuration(
            "otel_db_full",
            "otel_db, every feature on",
            PROJECT_ENV,
            launcher=True,
            env={**_OTEL_DB, **every_feature_on()},
        ),
        "otel_db_full_traces": Configuration(
            "otel_db_full_traces",
            "otel_db, every feature on, traces only (OTEL_METRICS_EXPORTER=none)",
            PROJECT_ENV,
            launcher=True,
            env={**_OTEL_DB, **every_feature_on(), **TRACES_ONLY},
            compare_to="contrib_traces",
        ),
    }


def project_python() -> Path:
    return Path(sys.executable)


def launcher_next_to(python: Path) -> Path:
    """The ``opentelemetry-instrument`` script of the virtualenv ``python`` belongs to."""
    return python.parent / (
        "opentelemetry-instrument.exe" if os.name == "nt" else "opentelemetry-instrument"
    )
