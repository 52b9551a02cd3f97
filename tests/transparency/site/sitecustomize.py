"""Started by every interpreter of the traced run of scripts/transparency.py.

otel_db is configured as an application would (``otel_db.configure()``) with every
feature on (the job's environment sets them). Spans go through the whole otel_db
pipeline to an exporter that drops them, so nothing is printed and no receiver is
needed, while every stage still runs. The exporter appends how many spans it was given
per instrumentation scope to the file ``OTEL_DB_TRANSPARENCY_SPANS`` names, so the job
can tell a traced run that traced nothing.
"""

from __future__ import annotations

import os


def _configure() -> None:
    if os.environ.get("OTEL_DB_TRANSPARENCY_TRACED") != "1":
        return
    import otel_db

    otel_db.configure()
    from collections.abc import Sequence

    from opentelemetry import trace
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from otel_db.pipeline.build import export_pipeline
    from otel_db.settings import current_settings

    counts_file = os.environ.get("OTEL_DB_TRANSPARENCY_SPANS")

    class _Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            if counts_file:
                counts: dict[str, int] = {}
                for span in spans:
                    scope = span.instrumentation_scope
                    name = scope.name if scope is not None else "?"
                    counts[name] = counts.get(name, 0) + 1
                # One short append per batch: whole lines from every interpreter.
                with open(counts_file, "a") as sink:
                    sink.write("".join(f"{name}\t{n}\n" for name, n in counts.items()))
            return SpanExportResult.SUCCESS

    provider = trace.get_tracer_provider()
    add = getattr(provider, "add_span_processor", None)
    if add is not None:
        add(export_pipeline(current_settings(), _Drop()))


_configure()
