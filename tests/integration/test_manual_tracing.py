"""Every recipe in docs/manual-tracing.md, run as written, with the outcome it promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from opentelemetry.trace import StatusCode

from otel_db import attributes as attr

DOC = Path(__file__).resolve().parents[2] / "docs" / "manual-tracing.md"
BLOCK = re.compile(r"```python\n# recipe: (\w+)\n(.*?)```", re.S)


def recipes() -> dict[str, str]:
    return {name: code for name, code in BLOCK.findall(DOC.read_text())}


def run(*names: str) -> dict:
    found = recipes()
    namespace: dict = {}
    for name in ("setup", *names):
        exec(compile(found[name], f"{DOC.name}:{name}", "exec"), namespace)
    namespace["conn"].close()
    return namespace


def span(spans, name):
    (found,) = [s for s in spans.finished() if s.name == name]
    return found


def children(spans, parent):
    return [
        s
        for s in spans.db_spans()
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def test_every_recipe_is_checked():
    assert set(recipes()) == {"setup", *CHECKS}


def check_decorator(spans):
    page = span(spans, "load_order_page")
    assert page.attributes[attr.QUERY_COUNT] == 2
    assert page.attributes[attr.QUERY_TOTAL_MS] > 0
    names = sorted(s.name for s in children(spans, page))
    assert names == ["SELECT order_items", "SELECT orders"]


def check_block(spans):
    report = span(spans, "nightly_report")
    assert report.attributes["shop.report"] == "orders"
    assert report.attributes["shop.report.customers"] == 3
    assert report.attributes[attr.QUERY_COUNT] == 1
    assert report.attributes[attr.QUERY_TOTAL_MS] > 0


def check_n_plus_one(spans):
    listing = span(spans, "list_orders_with_items")
    assert listing.attributes[attr.QUERY_COUNT] == 11
    assert listing.attributes[attr.N_PLUS_ONE_DETECTED] is True
    assert listing.attributes[attr.N_PLUS_ONE_COUNT] == 10
    assert listing.attributes[attr.N_PLUS_ONE_QUERY] == "SELECT order_items"


def check_failure(spans):
    imported = span(spans, "import_order")
    assert imported.status.status_code is StatusCode.ERROR
    assert any(e.name == "exception" for e in imported.events)
    # sqlite3 opened a transaction for the INSERT: the statement is its child
    (transaction,) = children(spans, imported)
    assert transaction.attributes[attr.TRANSACTION_OUTCOME] == attr.OUTCOME_ROLLED_BACK
    (insert,) = children(spans, transaction)
    assert insert.attributes[attr.ERROR_CATEGORY] == "constraint_violation"
    assert insert.attributes[attr.DB_RESPONSE_STATUS_CODE] == "SQLITE_CONSTRAINT_UNIQUE"


def check_current_span(spans):
    checkout = span(spans, "checkout")
    assert checkout.attributes["shop.customer_segment"] == "wholesale"
    assert checkout.attributes[attr.QUERY_COUNT] == 1


CHECKS = {
    "decorator": check_decorator,
    "block": check_block,
    "n_plus_one": check_n_plus_one,
    "failure": check_failure,
    "current_span": check_current_span,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_recipe(spans, name):
    run(name)
    CHECKS[name](spans)
