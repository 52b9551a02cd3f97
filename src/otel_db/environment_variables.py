"""The distro's own environment variables.

Registered under the ``opentelemetry_environment_variables`` entry point, so
``opentelemetry-instrument --python_db_slow_query_threshold_ms 200`` works like the
variable. Defaults and meanings are in docs/configuration.md.
"""

OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS = "OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS"
"""
.. envvar:: OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS

Statements whose duration is at or above this many milliseconds get
``otel_db.query.slow=true``. Default: 500.
"""

OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD = "OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD"
"""
.. envvar:: OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD

Repeats of one statement fingerprint under one parent span that count as N+1.
``0`` disables detection. Default: 5.
"""

OTEL_PYTHON_DB_SANITIZE_QUERIES = "OTEL_PYTHON_DB_SANITIZE_QUERIES"
"""
.. envvar:: OTEL_PYTHON_DB_SANITIZE_QUERIES

Replace literals in ``db.query.text`` with ``?``. Default: true.
"""

OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT = "OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT"
"""
.. envvar:: OTEL_PYTHON_DB_CAPTURE_QUERY_TEXT

``false``: no ``db.query.text`` (nor legacy ``db.statement``) on any span, and no
statement echoed in exported error messages; summary and fingerprint stay. Default: true.
"""

OTEL_PYTHON_DB_CAPTURE_PARAMETERS = "OTEL_PYTHON_DB_CAPTURE_PARAMETERS"
"""
.. envvar:: OTEL_PYTHON_DB_CAPTURE_PARAMETERS

Record bound parameters as ``db.query.parameter.<key>``. Default: false.
"""

OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES = "OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES"
"""
.. envvar:: OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES

Capture a plain EXPLAIN (never ANALYZE) for slow SELECT statements. Default: false.
"""

OTEL_PYTHON_DB_SQLCOMMENTER = "OTEL_PYTHON_DB_SQLCOMMENTER"
"""
.. envvar:: OTEL_PYTHON_DB_SQLCOMMENTER

Append a ``traceparent`` SQL comment to executed statements. Default: false.
"""

OTEL_PYTHON_DB_TRANSACTION_SPANS = "OTEL_PYTHON_DB_TRANSACTION_SPANS"
"""
.. envvar:: OTEL_PYTHON_DB_TRANSACTION_SPANS

Emit transaction spans and transaction outcomes. Default: true.
"""

OTEL_PYTHON_DB_POOL_ATTRIBUTES = "OTEL_PYTHON_DB_POOL_ATTRIBUTES"
"""
.. envvar:: OTEL_PYTHON_DB_POOL_ATTRIBUTES

Put connection-pool attributes on statement spans. Default: true.
"""

OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS = "OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS"
"""
.. envvar:: OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS

Longest time the process spends exporting at exit or on SIGTERM, across all exporters;
what is still queued then is counted and reported. Default: 5000.
"""
