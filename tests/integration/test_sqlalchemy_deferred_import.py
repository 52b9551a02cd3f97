"""otel_db.configure() does not import SQLAlchemy; the application's import installs it.

SQLAlchemy's own ``GreenletImportTests`` start a fresh interpreter and assert that
neither ``sqlalchemy`` nor ``greenlet`` is imported yet (issue 21). The listeners must
still be on before the application's ``import sqlalchemy`` returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

_SCRIPT = r"""
import json, sys
import otel_db
otel_db.configure()
before = {"sqlalchemy": "sqlalchemy" in sys.modules, "greenlet": "greenlet" in sys.modules}
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from otel_db.instrumentation.sqlalchemy import SQLAlchemyStatementInstrumentor as S
listening = S._listener is not None and event.contains(
    Engine, "before_cursor_execute", S._listener.before_cursor_execute
)
print(json.dumps({"before": before, "listening": listening,
                  "greenlet_after": "greenlet" in sys.modules}))
"""


#: Whether the application's own ``import sqlalchemy`` imports greenlet, without otel_db:
#: SQLAlchemy 2.0 does (util/concurrency.py), 2.1 defers it to the first asyncio use.
_PLAIN = "import json, sys, sqlalchemy; print(json.dumps('greenlet' in sys.modules))"


def _run(script: str, env: dict[str, str], cwd) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_configure_defers_sqlalchemy_to_the_applications_import(tmp_path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    result = json.loads(_run(_SCRIPT, env, tmp_path))
    plain_greenlet = json.loads(_run(_PLAIN, env, tmp_path))
    assert result["before"] == {"sqlalchemy": False, "greenlet": False}
    assert result["listening"] is True
    # Exactly what the application's import does without otel_db (False on SQLAlchemy 2.1).
    assert result["greenlet_after"] is plain_greenlet
