"""Span exporters shipped with otel_db."""
