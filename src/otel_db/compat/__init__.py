"""Which versions of OpenTelemetry otel_db's private-surface shortcuts were verified on."""
