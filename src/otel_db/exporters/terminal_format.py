"""Renders one trace's database spans as a readable tree of text lines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.pipeline.db_span import db_system, query_text

_TEXT_WIDTH = 110


def _duration_ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6


def markers(attributes: Mapping[str, AttributeValue]) -> list[str]:
    """Short tags for the otel_db facts a span carries, in a fixed order."""
    out: list[str] = []
    used, limit = attributes.get(attr.POOL_USED), attributes.get(attr.POOL_MAX)
    if used is not None:
        pool = f"pool {used}/{limit}" if limit is not None else f"pool used {used}"
        wait = attributes.get(attr.POOL_WAIT_MS)
        if isinstance(wait, (int, float)) and wait >= 1:
            pool += f" waited {wait:.0f} ms"
        out.append(pool)
    outcome = attributes.get(attr.TRANSACTION_OUTCOME)
    if outcome is not None:
        # released: a read-only transaction ended without COMMIT; nothing was lost.
        out.append(
            "tx released (read-only)" if outcome == attr.OUTCOME_RELEASED else f"tx {outcome}"
        )
    if attributes.get(attr.QUERY_SLOW):
        out.append(f"SLOW (>= {attributes.get(attr.QUERY_SLOW_THRESHOLD_MS, '?')} ms)")
    if attributes.get(attr.N_PLUS_ONE):
        out.append("N+1")
    if attributes.get(attr.N_PLUS_ONE_DETECTED):
        out.append(f"N+1 detected: {attributes.get(attr.N_PLUS_ONE_COUNT)}x")
    count = attributes.get(attr.QUERY_COUNT)
    if count is not None:
        out.append(f"{count} queries")
    category = attributes.get(attr.ERROR_CATEGORY)
    if category is not None:
        code = attributes.get(attr.DB_RESPONSE_STATUS_CODE)
        detail = f" {code}" if code is not None else ""
        retry = " retryable" if attributes.get(attr.ERROR_RETRYABLE) else ""
        out.append(f"error {category}{detail}{retry}")
    return out


def detail_lines(attributes: Mapping[str, AttributeValue]) -> list[str]:
    """Lines shown under a span: its statement, the N+1 offender, the plan's first line."""
    lines: list[str] = []
    text = query_text(attributes)
    if text:
        lines.append(_one_line(text))
    offender = attributes.get(attr.N_PLUS_ONE_QUERY)
    if isinstance(offender, str):
        lines.append(_one_line(f"N+1: {offender}"))
    plan = attributes.get(attr.QUERY_EXPLAIN)
    if isinstance(plan, str) and plan.strip():
        lines.append(_one_line(f"plan: {plan.strip().splitlines()[0]}"))
    return lines


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_WIDTH else text[: _TEXT_WIDTH - 1] + "…"


def _is_db(span: ReadableSpan) -> bool:
    attrs = span.attributes or {}
    return db_system(attrs) is not None or attr.TRANSACTION_ID in attrs


def render_trace(spans: Sequence[ReadableSpan]) -> list[str]:
    """Lines for the trace's database spans and the application spans above them."""
    by_id = {span.context.span_id: span for span in spans if span.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent_id = span.parent.span_id if span.parent is not None else None
        if parent_id not in by_id:
            parent_id = None
        children.setdefault(parent_id, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: s.start_time or 0)

    keep: dict[int, bool] = {}

    def relevant(span: ReadableSpan) -> bool:
        span_id = span.context.span_id
        if span_id not in keep:
            keep[span_id] = _is_db(span) or any(
                relevant(child) for child in children.get(span_id, ())
            )
        return keep[span_id]

    roots = [span for span in children.get(None, ()) if relevant(span)]
    if not roots:
        return []
    lines = [f"trace {roots[0].context.trace_id:032x}"]

    def walk(span: ReadableSpan, prefix: str, last: bool) -> None:
        branch = "└─ " if last else "├─ "
        attrs = span.attributes or {}
        error = " ERROR" if span.status.status_code is StatusCode.ERROR else ""
        tags = markers(attrs)
        tag_text = f"  [{' · '.join(tags)}]" if tags else ""
        lines.append(f"{prefix}{branch}{span.name}  {_duration_ms(span):.2f} ms{error}{tag_text}")
        inner = prefix + ("   " if last else "│  ")
        lines.extend(f"{inner}   {line}" for line in detail_lines(attrs))
        kids = [child for child in children.get(span.context.span_id, ()) if relevant(child)]
        for index, child in enumerate(kids):
            walk(child, inner, index == len(kids) - 1)

    for index, root in enumerate(roots):
        walk(root, "", index == len(roots) - 1)
    return lines
