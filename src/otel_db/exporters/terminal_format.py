"""Renders one trace's database spans as a readable tree of text lines.

Each fact is said once per level: a transaction's outcome on its own line (a statement
repeats it only when its own differs), a pool reading only when it changed since the
previous statement at that level, a statement's text only when it is not the one just
above it. Every statement of a detected N+1 run is marked
``N+1 k/n``, so the markers agree with the count on the request's line. Statements the
database library issued on its own (connection set-up, pool pings) are folded into one
``library:`` line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.pipeline.db_span import db_system, query_text

_TEXT_WIDTH = 110
_DIM, _RESET = "\x1b[2m", "\x1b[0m"

#: The scope of otel_db's SQLAlchemy statement tracer: statements the application ran.
SQLALCHEMY_SCOPE = "otel_db.instrumentation.sqlalchemy"

#: Statements database libraries issue on their own when they connect or set a
#: connection up (SQLAlchemy's dialect initialisation per backend), lower-cased, after
#: sanitizing (so ``'x'`` is ``?``).
LIBRARY_SETUP_STATEMENTS = frozenset(
    {
        "pragma read_uncommitted",
        "select pg_catalog.version()",
        "select current_schema()",
        "show standard_conforming_strings",
        "show transaction isolation level",
        "select current_setting(?)",
        "select version()",
        "select @@version",
        "select @@transaction_isolation",
        "select @@tx_isolation",
        "select database()",
        "show variables like ?",
        "select @@sql_mode",
        "select @@lower_case_table_names",
        "set names utf8mb4",
        "set names utf8",
        "show collation",
        "select cast(? as char(?)) as anon_1",
        "select cast(? as char(?) character set utf8mb4) as anon_1",
    }
)
#: A pool's pre-ping, when it reached the driver without going through SQLAlchemy.
_PINGS = frozenset({"select ?", "select 1"})

LEGEND = (
    "otel_db terminal view: one tree per trace, printed once the trace is complete; each",
    "line is a span (name, duration, [facts]) with its sanitized statement below it (left",
    "out when it is the statement just above, run again).",
    "  pool 1/15 in use   connections checked out / most the pool may hold, as the statement",
    "                     started; waited N ms: how long taking its connection waited",
    "  9 statements       statements the span issued (also through its transactions)",
    "  tx <outcome>       on a TRANSACTION line (a statement shows it only if its own differs):",
    "                     committed = kept, rolled_back = discarded or failed,",
    "                     released = read-only, nothing to keep, unknown = connection lost",
    "  SLOW (>= 500 ms)   at or over OTEL_PYTHON_DB_SLOW_QUERY_THRESHOLD_MS",
    "  N+1 3/8            repeat 3 of 8 of one statement under one request; the request says",
    "                     N+1 detected: 8x (OTEL_PYTHON_DB_N_PLUS_ONE_THRESHOLD repeats or more)",
    "  error <category>   why it failed: constraint_violation, deadlock, connection, ...",
    "  library: ...       statements the database library issued on its own (set-up, pings)",
)


def _duration_ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6


def pool_marker(attributes: Mapping[str, AttributeValue]) -> str | None:
    used, limit = attributes.get(attr.POOL_USED), attributes.get(attr.POOL_MAX)
    if used is None:
        return None
    pool = f"pool {used}/{limit} in use" if limit is not None else f"pool {used} in use"
    wait = attributes.get(attr.POOL_WAIT_MS)
    if isinstance(wait, (int, float)) and wait >= 1:
        pool += f", waited {wait:.0f} ms"
    return pool


def _plural(count: AttributeValue, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def markers(
    attributes: Mapping[str, AttributeValue],
    *,
    pool: bool = True,
    outcome: bool = True,
) -> list[str]:
    """Short tags for the otel_db facts a span carries, in a fixed order."""
    out: list[str] = []
    if pool:
        pool_text = pool_marker(attributes)
        if pool_text is not None:
            out.append(pool_text)
    tx_outcome = attributes.get(attr.TRANSACTION_OUTCOME)
    if outcome and tx_outcome is not None:
        # released: a read-only transaction ended without COMMIT; nothing was lost.
        out.append(
            "tx released (read-only)"
            if tx_outcome == attr.OUTCOME_RELEASED
            else f"tx {tx_outcome}"
        )
    if attributes.get(attr.QUERY_SLOW):
        threshold = attributes.get(attr.QUERY_SLOW_THRESHOLD_MS)
        shown = f"{threshold:g}" if isinstance(threshold, (int, float)) else "?"
        out.append(f"SLOW (>= {shown} ms)")
    count = attributes.get(attr.QUERY_COUNT)
    if count is not None:
        out.append(_plural(count, "statement"))
    if attributes.get(attr.N_PLUS_ONE_DETECTED):
        out.append(f"N+1 detected: {attributes.get(attr.N_PLUS_ONE_COUNT)}x")
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
        count = attributes.get(attr.N_PLUS_ONE_COUNT)
        times = f" ran {count} times" if count is not None else ""
        lines.append(_one_line(f"N+1: {offender}{times} (each marked N+1 below)"))
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


def _is_transaction(span: ReadableSpan) -> bool:
    return attr.TRANSACTION_STATEMENT_COUNT in (span.attributes or {})


def _scope_name(span: ReadableSpan) -> str | None:
    scope = span.instrumentation_scope
    return scope.name if scope is not None else None


def library_statement(span: ReadableSpan, sqlalchemy_in_trace: bool) -> bool:
    """Whether ``span`` is a statement the library issued on its own (see module doc)."""
    attrs = span.attributes or {}
    if db_system(attrs) is None or _is_transaction(span) or attr.ERROR_CATEGORY in attrs:
        return False
    if span.status.status_code is StatusCode.ERROR:
        return False
    if attrs.get(attr.QUERY_LIBRARY_ISSUED):  # marked where it ran (pre-ping, dialect set-up)
        return True
    text = " ".join((query_text(attrs) or "").lower().split()).rstrip(";").strip()
    if text in LIBRARY_SETUP_STATEMENTS:
        return True
    # The same text from the application goes through SQLAlchemy's own tracer.
    return sqlalchemy_in_trace and text in _PINGS and _scope_name(span) != SQLALCHEMY_SCOPE


def _run_key(span: ReadableSpan) -> object:
    attrs = span.attributes or {}
    return attrs.get(attr.QUERY_FINGERPRINT) or query_text(attrs) or span.name


def render_trace(spans: Sequence[ReadableSpan], *, dim: bool = False) -> list[str]:
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
    sqlalchemy_in_trace = any(_scope_name(span) == SQLALCHEMY_SCOPE for span in spans)
    run_position = _n_plus_one_positions(spans, by_id)
    lines = [f"trace {roots[0].context.trace_id:032x}"]

    def walk(
        span: ReadableSpan,
        prefix: str,
        last: bool,
        tx_outcome: object,
        pool: bool,
        same_text: bool = False,
    ) -> None:
        branch = "└─ " if last else "├─ "
        attrs = span.attributes or {}
        error = " ERROR" if span.status.status_code is StatusCode.ERROR else ""
        own_outcome = attrs.get(attr.TRANSACTION_OUTCOME)
        tags = markers(
            attrs,
            pool=pool,
            outcome=_is_transaction(span) or own_outcome != tx_outcome,
        )
        position = run_position.get(span.context.span_id)
        if position is not None:
            tags.append(f"N+1 {position[0]}/{position[1]}")
        tag_text = f"  [{' · '.join(tags)}]" if tags else ""
        lines.append(f"{prefix}{branch}{span.name}  {_duration_ms(span):.2f} ms{error}{tag_text}")
        inner = prefix + ("   " if last else "│  ")
        details = detail_lines(attrs)
        if same_text and details:
            details = details[1:]  # the statement the line above showed, run again
        lines.extend(f"{inner}   {line}" for line in details)
        if _is_transaction(span):
            tx_outcome = own_outcome
        kids = [child for child in children.get(span.context.span_id, ()) if relevant(child)]
        walk_children(kids, inner, tx_outcome)

    def library_statements(span: ReadableSpan) -> list[ReadableSpan] | None:
        """The statements folded into a ``library:`` line for ``span``, if it is one: a
        library statement, or a transaction that ran nothing else (connection set-up)."""
        if library_statement(span, sqlalchemy_in_trace):
            return [span]
        if not _is_transaction(span) or span.status.status_code is StatusCode.ERROR:
            return None
        kids = [child for child in children.get(span.context.span_id, ()) if relevant(child)]
        if kids and all(library_statement(kid, sqlalchemy_in_trace) for kid in kids):
            return kids
        return None

    def walk_children(kids: list[ReadableSpan], prefix: str, tx_outcome: object) -> None:
        groups: list[list[ReadableSpan]] = []
        library = False
        for kid in kids:
            folded = library_statements(kid)
            if folded is not None and library:
                groups[-1].extend(folded)
                continue
            library = folded is not None
            groups.append(folded if folded is not None else [kid])
        previous_pool: str | None = None
        previous_text: str | None = None
        for index, group in enumerate(groups):
            last = index == len(groups) - 1
            if library_statement(group[0], sqlalchemy_in_trace):
                lines.append(_library_line(group, prefix, last, dim))
                previous_text = None
                continue
            kid_attrs = group[0].attributes or {}
            pool_text = pool_marker(kid_attrs)
            text = query_text(kid_attrs)
            same_text = text is not None and text == previous_text
            walk(group[0], prefix, last, tx_outcome, pool_text != previous_pool, same_text)
            if pool_text is not None:
                previous_pool = pool_text
            previous_text = text

    walk_children(roots, "", None)
    return lines


def _library_line(group: list[ReadableSpan], prefix: str, last: bool, dim: bool) -> str:
    branch = "└─ " if last else "├─ "
    texts: list[str] = []
    for span in group:
        text = _one_line(query_text(span.attributes or {}) or span.name)
        if text not in texts:
            texts.append(text)
    total = sum(_duration_ms(span) for span in group)
    count = f"{len(group)} statements: " if len(group) > 1 else ""
    body = _one_line(f"library: {count}{', '.join(texts)}") + f"  {total:.2f} ms"
    return f"{prefix}{branch}{_DIM}{body}{_RESET}" if dim else f"{prefix}{branch}{body}"


def _n_plus_one_positions(
    spans: Sequence[ReadableSpan], by_id: Mapping[int, ReadableSpan]
) -> dict[int, tuple[int, int]]:
    """``k, n`` for every statement of a detected N+1 run: the detector marks only the
    repeats from the threshold on (the earlier ones were exported already), the view has
    the whole trace and marks them all."""

    def application_parent(span: ReadableSpan) -> int | None:
        parent = span.parent
        while parent is not None:
            found = by_id.get(parent.span_id)
            if found is None or not _is_db(found):
                return parent.span_id
            parent = found.parent
        return None

    flagged: set[tuple[int | None, object]] = set()
    statements: list[tuple[tuple[int | None, object], ReadableSpan]] = []
    for span in spans:
        attrs = span.attributes or {}
        if db_system(attrs) is None or _is_transaction(span):
            continue
        key = (application_parent(span), _run_key(span))
        statements.append((key, span))
        if attrs.get(attr.N_PLUS_ONE):
            flagged.add(key)
    runs: dict[tuple[int | None, object], list[ReadableSpan]] = {}
    for key, span in statements:
        if key in flagged:
            runs.setdefault(key, []).append(span)
    positions: dict[int, tuple[int, int]] = {}
    for run in runs.values():
        run.sort(key=lambda s: s.start_time or 0)
        for index, span in enumerate(run, start=1):
            positions[span.context.span_id] = (index, len(run))
    return positions
