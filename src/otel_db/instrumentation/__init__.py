"""otel_db's own instrumentations, where the contrib ones leave gaps."""
