"""contrib's DB-API histograms, recorded through the shared-attributes shortcut.

Under the stable database conventions contrib's DB-API instrumentations (psycopg2,
sqlite3) record ``db.client.operation.duration`` and ``db.client.response.returned_rows``
for every statement, each time with a fresh attributes dict that equals the last one
for the same operation. Through the SDK's ``Histogram.record`` that is two full
attribute copies, sorts and hashes per statement (~9 us each). Wrapping contrib's two
instruments in :class:`InternedAttributesHistogram` records the same measurements into
the same SDK aggregations through :class:`SharedAttributesHistogram`: equal attribute
dicts are replaced by one kept copy (per distinct set, bounded), which the shortcut
can recognise by identity.
"""

from __future__ import annotations

from typing import Any, Final

from otel_db.compat.verified import shortcut
from otel_db.metrics.export_state import metrics_exported
from otel_db.metrics.shared_histogram import SharedAttributesHistogram

#: Distinct attribute sets kept per histogram; beyond it, new sets take the public path.
MAX_INTERNED_SETS: Final = 1_024

#: contrib's ``DatabaseApiIntegration`` attributes holding its two histograms (private
#: names: gated by the ``contrib.dbapi`` shortcut).
CONTRIB_HISTOGRAM_ATTRIBUTES: Final = ("_duration_histogram", "_returned_rows_histogram")


class InternedAttributesHistogram:
    """A histogram whose ``record`` accepts a new-but-equal attributes dict per call."""

    __slots__ = ("_interned", "_shared", "histogram")

    def __init__(self, histogram: Any) -> None:
        self.histogram = histogram
        self._shared = SharedAttributesHistogram(histogram)
        self._interned: dict[tuple[Any, ...], dict[str, Any]] = {}

    def record(self, amount: Any, attributes: Any = None, context: Any = None) -> None:
        if context is None and type(attributes) is dict:
            try:
                key = tuple(attributes.items())
                kept = self._interned.get(key)
            except TypeError:  # an unhashable value: only the public path can take it
                kept = key = None
            if kept is None and key is not None and len(self._interned) < MAX_INTERNED_SETS:
                # Keys are copied too: the caller may mutate its dict after the call.
                kept = self._interned.setdefault(key, dict(attributes))
            if kept is not None:
                self._shared.record(amount, kept)
                return
        self.histogram.record(amount, attributes, context)

    def keep(self, attributes: dict[str, Any]) -> dict[str, Any] | None:
        """The kept copy of ``attributes`` for :meth:`record_kept` (one per distinct set),
        or None when it cannot be kept (an unhashable value, or the cap reached)."""
        try:
            key = tuple(attributes.items())
            kept = self._interned.get(key)
        except TypeError:
            return None
        if kept is None and len(self._interned) < MAX_INTERNED_SETS:
            kept = self._interned.setdefault(key, dict(attributes))
        return kept

    def record_kept(self, amount: Any, kept: dict[str, Any]) -> None:
        """``record(amount, kept)`` for a dict :meth:`keep` returned (never mutated)."""
        self._shared.record(amount, kept)

    def __getattr__(self, name: str) -> Any:
        # Anything else contrib (or a test) reads from its instrument: the instrument's.
        return getattr(self.histogram, name)


def intern_contrib_histograms(integration: Any) -> None:
    """Wrap the histograms a contrib ``DatabaseApiIntegration`` created, if it did.

    A contrib release that renames or drops them is left as it is (its records take
    the public path), and so is any contrib release outside the verified versions
    (:mod:`otel_db.compat.verified`); this never raises.
    """
    if not shortcut("contrib.dbapi") or not metrics_exported():
        return  # (no metrics exported: contrib's histograms are the API's no-op ones)
    for name in CONTRIB_HISTOGRAM_ATTRIBUTES:
        histogram = getattr(integration, name, None)
        if histogram is None or isinstance(histogram, InternedAttributesHistogram):
            continue
        if not callable(getattr(histogram, "record", None)):
            continue
        try:
            setattr(integration, name, InternedAttributesHistogram(histogram))
        except Exception:  # pragma: no cover - a read-only attribute in some release
            continue


__all__ = ["MAX_INTERNED_SETS", "InternedAttributesHistogram", "intern_contrib_histograms"]
