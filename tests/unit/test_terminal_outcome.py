"""The terminal view names a read-only transaction's outcome as what it is."""

from __future__ import annotations

from otel_db import attributes as attr
from otel_db.exporters.terminal_format import markers


def test_released_reads_as_read_only_not_as_a_rollback():
    shown = markers({attr.TRANSACTION_OUTCOME: attr.OUTCOME_RELEASED})
    assert "tx released (read-only)" in shown
    assert not any("rolled" in marker for marker in shown)
    assert "tx rolled_back" in markers({attr.TRANSACTION_OUTCOME: attr.OUTCOME_ROLLED_BACK})
