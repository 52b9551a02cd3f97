"""Names of every span attribute otel_db reads or writes.

One module so that code, docs, collector rules and tests all spell a name the same
way; users search and alert on these strings (see the public contract).
"""

from __future__ import annotations

from typing import Final

# Semantic-convention (stable database conventions) names.
DB_SYSTEM_NAME: Final = "db.system.name"
DB_NAMESPACE: Final = "db.namespace"
DB_COLLECTION_NAME: Final = "db.collection.name"
DB_OPERATION_NAME: Final = "db.operation.name"
DB_QUERY_TEXT: Final = "db.query.text"
DB_QUERY_SUMMARY: Final = "db.query.summary"
DB_QUERY_PARAMETER_PREFIX: Final = "db.query.parameter."
DB_RESPONSE_STATUS_CODE: Final = "db.response.status_code"
DB_OPERATION_BATCH_SIZE: Final = "db.operation.batch.size"
DB_RESPONSE_RETURNED_ROWS: Final = "db.response.returned_rows"
DB_CLIENT_CONNECTION_POOL_NAME: Final = "db.client.connection.pool.name"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"

# Legacy names the contrib instrumentations still write in their default mode.
LEGACY_DB_SYSTEM: Final = "db.system"
LEGACY_DB_STATEMENT: Final = "db.statement"
LEGACY_DB_NAME: Final = "db.name"
LEGACY_DB_OPERATION: Final = "db.operation"

# Resource attributes.
TELEMETRY_DISTRO_NAME: Final = "telemetry.distro.name"
TELEMETRY_DISTRO_VERSION: Final = "telemetry.distro.version"
DISTRO_NAME: Final = "otel_db"

# otel_db attributes on database client spans.
POOL_SIZE: Final = "otel_db.pool.size"
POOL_MAX: Final = "otel_db.pool.max"
POOL_USED: Final = "otel_db.pool.used"
POOL_IDLE: Final = "otel_db.pool.idle"
POOL_UTILIZATION: Final = "otel_db.pool.utilization"
POOL_WAIT_MS: Final = "otel_db.pool.wait_ms"
TRANSACTION_ID: Final = "otel_db.transaction.id"
TRANSACTION_OUTCOME: Final = "otel_db.transaction.outcome"
TRANSACTION_STATEMENT_COUNT: Final = "otel_db.transaction.statement_count"
QUERY_SLOW: Final = "otel_db.query.slow"
QUERY_SLOW_THRESHOLD_MS: Final = "otel_db.query.slow_threshold_ms"
QUERY_FINGERPRINT: Final = "otel_db.query.fingerprint"
QUERY_EXPLAIN: Final = "otel_db.query.explain"
N_PLUS_ONE: Final = "otel_db.n_plus_one"
#: A statement the library issued on its own (pool pre-ping, dialect start-up).
QUERY_LIBRARY_ISSUED: Final = "otel_db.query.library_issued"
ERROR_CATEGORY: Final = "otel_db.error.category"
ERROR_RETRYABLE: Final = "otel_db.error.retryable"

# otel_db attributes on the application span that issued the statements.
N_PLUS_ONE_DETECTED: Final = "otel_db.n_plus_one.detected"
N_PLUS_ONE_COUNT: Final = "otel_db.n_plus_one.count"
N_PLUS_ONE_QUERY: Final = "otel_db.n_plus_one.query"
QUERY_COUNT: Final = "otel_db.query.count"
QUERY_TOTAL_MS: Final = "otel_db.query.total_ms"

# otel_db attributes on Alembic revision spans.
MIGRATION_TOOL: Final = "otel_db.migration.tool"
MIGRATION_REVISION: Final = "otel_db.migration.revision"
MIGRATION_DOWN_REVISION: Final = "otel_db.migration.down_revision"
MIGRATION_DIRECTION: Final = "otel_db.migration.direction"
MIGRATION_MESSAGE: Final = "otel_db.migration.message"

# Values of otel_db.transaction.outcome.
OUTCOME_COMMITTED: Final = "committed"
OUTCOME_ROLLED_BACK: Final = "rolled_back"
#: Ended without COMMIT, ran no statement that can write, did not fail.
OUTCOME_RELEASED: Final = "released"
OUTCOME_UNKNOWN: Final = "unknown"

# Values of otel_db.error.category.
ERROR_CATEGORIES: Final = (
    "constraint_violation",
    "deadlock",
    "serialization_failure",
    "lock_timeout",
    "query_canceled",
    "connection",
    "authentication",
    "syntax",
    "other",
)

#: Every pool attribute a statement span on a pooled connection carries.
POOL_ATTRIBUTES: Final = (
    DB_CLIENT_CONNECTION_POOL_NAME,
    POOL_SIZE,
    POOL_MAX,
    POOL_USED,
    POOL_IDLE,
    POOL_UTILIZATION,
    POOL_WAIT_MS,
)
