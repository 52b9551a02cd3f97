"""otel_db's benchmarks: per-statement cost matrix, micro-benchmarks and a volume run.

Not part of the test suite (tests/test_benchmark_smoke.py only checks the harness runs).
See benchmarks/README.md.
"""
