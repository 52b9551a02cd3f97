"""``OTEL_PYTHON_DB_EXPLAIN_SLOW_QUERIES``: the plan of a slow SELECT on its span.

See :mod:`otel_db.explain.slow_select` for when a plan is taken and
:mod:`otel_db.explain.runners` for how each database is asked, safely.
"""
