"""The contrib stack's own virtualenv: opentelemetry-distro and contrib, without otel_db.

Created once under ``benchmarks/.venvs/contrib`` (git-ignored) and reused while its
requirements stay the same. The OpenTelemetry packages and the drivers are pinned to
the versions of the project's environment, so the two stacks differ only in what
instruments and processes the spans; SQLAlchemy is the newest 2.0.x, the newest line
contrib's SQLAlchemy instrumentation accepts.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

from benchmarks.configs import REPO_ROOT

VENV_DIR = REPO_ROOT / "benchmarks" / ".venvs" / "contrib"
_STAMP = ".otel_db_bench_requirements"

_INSTRUMENTATIONS = ("sqlalchemy", "sqlite3", "psycopg2", "redis", "asyncpg", "dbapi", "mysql")


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _pin(distribution: str, version: str | None) -> str:
    return f"{distribution}=={version}" if version else distribution


def requirements() -> list[str]:
    """What the contrib virtualenv installs, pinned to the project environment's versions."""
    instrumentation = _installed("opentelemetry-instrumentation")
    sdk = _installed("opentelemetry-sdk")
    return [
        _pin("opentelemetry-distro", instrumentation),
        _pin("opentelemetry-exporter-otlp", sdk),
        _pin("opentelemetry-sdk", sdk),
        *(
            _pin(f"opentelemetry-instrumentation-{name}", instrumentation)
            for name in _INSTRUMENTATIONS
        ),
        "sqlalchemy[asyncio]>=2.0,<2.1",
        _pin("psycopg2-binary", _installed("psycopg2-binary")),
        _pin("redis", _installed("redis")),
        _pin("asyncpg", _installed("asyncpg")),
        _pin("pg8000", _installed("pg8000")),
        _pin("mysql-connector-python", _installed("mysql-connector-python")),
    ]


def python_path(venv_dir: Path = VENV_DIR) -> Path:
    return venv_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def ensure(venv_dir: Path = VENV_DIR, log=print) -> Path:
    """The contrib virtualenv's python, creating or updating the virtualenv if needed."""
    wanted = "\n".join(requirements())
    stamp = venv_dir / _STAMP
    python = python_path(venv_dir)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"creating the contrib virtualenv in {venv_dir} (once; about a minute)")
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *requirements()],
        check=True,
        timeout=900,
    )
    stamp.write_text(wanted)
    return python


if __name__ == "__main__":
    print(ensure())
