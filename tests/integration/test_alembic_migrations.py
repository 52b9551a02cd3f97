"""Alembic revisions as spans: a real Alembic environment, generated in tmp_path, run
against the real PostgreSQL (upgrade to head, downgrade to base, a failing revision)."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from opentelemetry.trace import SpanKind, StatusCode

from otel_db import attributes as attr
from otel_db.migrations import alembic_revisions as m
from tests.conftest import POSTGRES_URL

URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://", 1)

FIRST, SECOND, BROKEN = "ae1027a6acf", "b2c3d4e5f6a7", "c9d8e7f6a5b4"

ENV = """
from alembic import context
from sqlalchemy import create_engine

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"))
with engine.connect() as connection:
    context.configure(
        connection=connection, version_table=config.get_main_option("version_table")
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
"""

REVISION = '''"""{message}

Revision ID: {revision}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
{upgrade}


def downgrade():
{downgrade}
'''


def write_revision(versions: Path, revision, down, message, upgrade, downgrade) -> None:
    body = REVISION.format(
        revision=revision,
        down=down,
        message=message,
        upgrade=textwrap.indent(textwrap.dedent(upgrade).strip(), "    "),
        downgrade=textwrap.indent(textwrap.dedent(downgrade).strip(), "    "),
    )
    (versions / f"{revision}.py").write_text(body)


@pytest.fixture
def alembic_env(tmp_path) -> tuple[Config, str]:
    table = f"otel_db_orders_{uuid.uuid4().hex[:8]}"
    (tmp_path / "env.py").write_text(ENV)
    versions = tmp_path / "versions"
    versions.mkdir()
    write_revision(
        versions,
        FIRST,
        None,
        "create orders",
        f"op.create_table({table!r}, sa.Column('id', sa.Integer, primary_key=True))",
        f"op.drop_table({table!r})",
    )
    write_revision(
        versions,
        SECOND,
        FIRST,
        "orders need a customer",
        f"""
        op.add_column({table!r}, sa.Column('customer_id', sa.Integer))
        op.execute("UPDATE {table} SET customer_id = 0")
        op.alter_column({table!r}, 'customer_id', nullable=False)
        """,
        f"op.drop_column({table!r}, 'customer_id')",
    )
    config = Config()
    config.set_main_option("script_location", str(tmp_path))
    config.set_main_option("sqlalchemy.url", URL)
    config.set_main_option("version_table", f"alembic_version_{table}")
    yield config, table
    # A failed test may leave the tables behind: drop them.
    import sqlalchemy as sa

    engine = sa.create_engine(URL)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS alembic_version_{table}")
    engine.dispose()


def revision_spans(spans):
    return [s for s in spans.finished() if m.MIGRATION_TOOL in (s.attributes or {})]


def children(spans, parent):
    return [
        s
        for s in spans.db_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


@pytest.mark.postgres
def test_upgrade_and_downgrade_one_span_per_revision(spans, alembic_env):
    config, table = alembic_env
    command.upgrade(config, "head")
    first, second = revision_spans(spans)
    assert first.name == f"upgrade {FIRST}"
    assert second.name == f"upgrade {SECOND}"
    assert first.kind is SpanKind.INTERNAL
    assert dict(second.attributes) == {
        m.MIGRATION_TOOL: "alembic",
        m.MIGRATION_REVISION: SECOND,
        m.MIGRATION_DOWN_REVISION: FIRST,
        m.MIGRATION_DIRECTION: "upgrade",
        m.MIGRATION_MESSAGE: "orders need a customer",
        attr.QUERY_COUNT: 3,
        attr.QUERY_TOTAL_MS: pytest.approx(second.attributes[attr.QUERY_TOTAL_MS]),
    }
    assert m.MIGRATION_DOWN_REVISION not in first.attributes  # the first revision
    (create,) = children(spans, first)
    assert create.attributes[attr.DB_QUERY_SUMMARY] == f"CREATE TABLE {table}"
    statements = children(spans, second)
    assert [s.attributes[attr.DB_OPERATION_NAME] for s in statements] == [
        "ALTER",
        "UPDATE",
        "ALTER",
    ]
    assert "SET NOT NULL" in statements[2].attributes[attr.DB_QUERY_TEXT]

    spans.clear()
    command.downgrade(config, "base")
    down_second, down_first = revision_spans(spans)
    assert down_second.name == f"downgrade {SECOND}"
    assert down_second.attributes[m.MIGRATION_DIRECTION] == "downgrade"
    assert down_first.name == f"downgrade {FIRST}"
    (drop,) = children(spans, down_first)
    assert drop.attributes[attr.DB_QUERY_SUMMARY] == f"DROP TABLE {table}"


@pytest.mark.postgres
def test_failing_revision_span_has_the_error(spans, alembic_env, tmp_path):
    config, table = alembic_env
    write_revision(
        tmp_path / "versions",
        BROKEN,
        SECOND,
        "a typo",
        f"op.execute(\"ALTER TABLE {table} ADD COLUMN total numeric DEFAULT 'hunter2'\")",
        "pass",
    )
    with pytest.raises(Exception, match="invalid input syntax"):
        command.upgrade(config, "head")
    broken = [s for s in revision_spans(spans) if s.name == f"upgrade {BROKEN}"]
    (span,) = broken
    assert span.status.status_code is StatusCode.ERROR
    (failed,) = children(spans, span)
    assert failed.attributes[attr.ERROR_CATEGORY] == "other"
    assert failed.attributes[attr.DB_RESPONSE_STATUS_CODE] == "22P02"
    # (the session's canary scan proves 'hunter2' left no exported field)
