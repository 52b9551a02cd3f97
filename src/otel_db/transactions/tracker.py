"""Open transactions, their spans, and the outcome each of their statements ends with.

Instrumentation (SQLAlchemy events, DB-API connection wrappers, Redis pipelines) reports
BEGIN / SAVEPOINT / COMMIT / ROLLBACK here; the tracker keeps one transaction span per
open transaction, tags statement spans with the transaction id, and when the outermost
transaction ends tells every registered listener (the holding stage) which outcome each
statement got. Statement spans end before their transaction does, so the holding stage
keeps them until then.

Everything is bounded: open transactions (the oldest leaves as ``unknown`` beyond the
cap), statements remembered per transaction, and the memory of recent resolutions.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_db import attributes as attr
from otel_db.pipeline.containment import FAILURES
from otel_db.pipeline.deferred import DEFERRED
from otel_db.pipeline.span_start import SpanStarter
from otel_db.transactions.write_classification import can_write
from otel_db.version import __version__

#: The instrumentation scope of every transaction span.
TRACER_NAME = "otel_db.transactions"
MAX_OPEN_TRANSACTIONS = 10_000
MAX_STATEMENTS_REMEMBERED = 1_000
MAX_RECENT_RESOLUTIONS = 10_000

OutcomeOf = Callable[[int], str]


class ResolutionListener(Protocol):
    def transaction_resolved(self, transaction_id: str, outcome_of: OutcomeOf) -> None: ...


class _Scope:
    """A transaction or a savepoint: one span, one outcome."""

    __slots__ = (
        "failed",
        "outcome",
        "parent",
        "span",
        "statement_count",
        "token",
        "transaction_id",
        "wrote",
    )

    def __init__(
        self,
        span: trace.Span,
        token: object | None,
        parent: _Scope | None,
        transaction_id: str = "",
    ) -> None:
        self.span = span
        self.token = token
        self.parent = parent
        self.transaction_id = transaction_id
        self.outcome: str | None = None
        self.statement_count = 0
        #: A statement that can write ran in this scope (or a savepoint inside it).
        self.wrote = False
        #: A statement failed in this scope (or a savepoint inside it).
        self.failed = False

    def mark(self, *, wrote: bool = False, failed: bool = False) -> None:
        scope: _Scope | None = self
        while scope is not None:
            scope.wrote = scope.wrote or wrote
            scope.failed = scope.failed or failed
            scope = scope.parent


class Transaction:
    """One open transaction on one connection."""

    __slots__ = (
        "had_savepoints",
        "id",
        "lost",
        "opened_under",
        "root",
        "savepoints",
        "started",
        "statements",
    )

    def __init__(
        self, transaction_id: str, root: _Scope, opened_under: trace.Span | None = None
    ) -> None:
        self.id = transaction_id
        self.root = root
        self.savepoints: list[tuple[str, _Scope]] = []
        self.had_savepoints = False
        self.statements: dict[int, _Scope] = {}
        self.lost = False
        #: The span that was current at BEGIN (the application span, usually).
        self.opened_under: trace.Span = (
            opened_under if opened_under is not None else trace.get_current_span()
        )
        self.started = time.monotonic()

    @property
    def innermost(self) -> _Scope:
        return self.savepoints[-1][1] if self.savepoints else self.root

    def outcome_of(self, span_id: int) -> str:
        """A statement's outcome: ``rolled_back`` if any scope around it was, else
        ``unknown`` if any scope's fate is, else ``released`` if any scope ended without
        COMMIT having discarded nothing, else ``committed``."""
        scope = self.statements.get(span_id)
        if scope is None:
            # Not remembered (beyond the cap): only a transaction that rolled back or
            # released as a whole is certain (a released one ran no write anywhere).
            outcome = self.root.outcome
            return (
                outcome
                if outcome in (attr.OUTCOME_ROLLED_BACK, attr.OUTCOME_RELEASED)
                else attr.OUTCOME_UNKNOWN
            )
        verdict = attr.OUTCOME_COMMITTED
        while scope is not None:
            outcome = scope.outcome
            if outcome == attr.OUTCOME_ROLLED_BACK:
                return attr.OUTCOME_ROLLED_BACK
            if outcome == attr.OUTCOME_RELEASED:
                if verdict == attr.OUTCOME_COMMITTED:
                    verdict = attr.OUTCOME_RELEASED
            elif outcome != attr.OUTCOME_COMMITTED:
                verdict = attr.OUTCOME_UNKNOWN
            scope = scope.parent
        return verdict


def _compact_resolution(transaction: Transaction) -> OutcomeOf:
    """What is remembered of an ended transaction for late spans: a few bytes.

    The listeners get the ended transaction's own ``outcome_of`` (exact, called once
    per held span, not kept). Most transactions give every statement the same outcome
    (no savepoint rolled back inside a committed transaction) and remembered all of
    them; then one outcome string answers for every statement that can carry the
    transaction's id (only :meth:`TransactionTracker.statement_in` tags spans).
    """
    statements = transaction.statements
    if not transaction.had_savepoints and transaction.root.statement_count <= len(statements):
        # Every statement ran in the root scope and is remembered: one verdict for all.
        first = next(iter(statements), None)
        return _Uniform(transaction.outcome_of(0 if first is None else first))
    not_remembered = transaction.outcome_of(0)
    by_scope: dict[int, str] = {}  # one verdict per scope, not per statement
    outcomes: dict[int, str] = {}
    for span_id, scope in transaction.statements.items():
        verdict = by_scope.get(id(scope))
        if verdict is None:
            verdict = by_scope[id(scope)] = transaction.outcome_of(span_id)
        outcomes[span_id] = verdict
    default = not_remembered
    if outcomes and transaction.root.statement_count <= len(outcomes):
        # Any statement asked about is remembered: the most common outcome is the
        # default, and only the statements of savepoints that disagree are kept.
        counts: dict[str, int] = {}
        for verdict in outcomes.values():
            counts[verdict] = counts.get(verdict, 0) + 1
        default = max(counts, key=counts.__getitem__)
        if len(counts) == 1:
            return _Uniform(default)
    # Statements beyond the cap get the not-remembered outcome: keep the others.
    return _Exceptions(default, {k: v for k, v in outcomes.items() if v != default})


class _Uniform:
    """Every statement of the transaction got the same outcome."""

    __slots__ = ("outcome",)

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome

    def __call__(self, span_id: int) -> str:
        return self.outcome


class _Exceptions:
    """A default outcome, and the statements that got another one."""

    __slots__ = ("_default", "_outcomes")

    def __init__(self, default: str, outcomes: dict[int, str]) -> None:
        self._default = default
        self._outcomes = outcomes

    def __call__(self, span_id: int) -> str:
        return self._outcomes.get(span_id, self._default)


def _settled(scope: _Scope, outcome: str, error: BaseException | None) -> str:
    """A rollback that discarded nothing (no statement that can write, no failure, no
    exception behind it) is ``released``: a read-only unit of work, nothing lost."""
    if (
        outcome == attr.OUTCOME_ROLLED_BACK
        and error is None
        and not scope.wrote
        and not scope.failed
    ):
        return attr.OUTCOME_RELEASED
    return outcome


def _current_error() -> BaseException | None:
    """The exception being handled, if the rollback happens because of one."""
    return sys.exc_info()[1]


class TransactionTracker:
    """Process-wide registry of open transactions, keyed by the connection that runs them."""

    def __init__(self, tracer: trace.Tracer | None = None) -> None:
        self._tracer = tracer or trace.get_tracer(TRACER_NAME, __version__)
        self._starter = SpanStarter(self._tracer)
        self._lock = threading.Lock()
        # id(key) -> (a weak reference to the key when it has them, else the key). A
        # connection the application drops without COMMIT/ROLLBACK (a garbage-collected
        # Session) must not be kept alive (and its pool slot taken) by the tracker: its
        # transaction ends as unknown once the connection is gone.
        self._open: OrderedDict[int, tuple[Any, Transaction]] = OrderedDict()
        # Filled by weak-reference callbacks, which may run inside any code (the cyclic
        # GC), even with the lock held: settled on the next tracker call instead.
        self._collected: deque[tuple[int, Any]] = deque()
        self._recent: OrderedDict[str, OutcomeOf] = OrderedDict()
        self._listeners: weakref.WeakSet[Any] = weakref.WeakSet()
        self._listener_refs: tuple[weakref.ref[Any], ...] = ()
        self._orphans: OrderedDict[int, tuple[trace.Span, object]] = OrderedDict()
        self.evicted = 0

    # -- listeners (holding stages) -------------------------------------------------

    def add_listener(self, listener: ResolutionListener) -> None:
        with self._lock:
            self._listeners.add(listener)
            self._listener_refs = tuple(weakref.ref(each) for each in self._listeners)

    def remove_listener(self, listener: ResolutionListener) -> None:
        with self._lock:
            self._listeners.discard(listener)
            self._listener_refs = tuple(weakref.ref(each) for each in self._listeners)

    @property
    def _listener_list(self) -> list[Any]:
        """The listeners still alive. Iterating the ``WeakSet`` per transaction cost more
        than the rest of the bookkeeping; its weak references are kept as a tuple."""
        return [listener for ref in self._listener_refs if (listener := ref()) is not None]

    def resolution(self, transaction_id: str) -> OutcomeOf | None:
        """How the statements of an already-ended transaction turned out, if remembered."""
        return self._recent.get(transaction_id)

    # -- lifecycle ----------------------------------------------------------------

    def opened_under(self, span: trace.Span) -> trace.Span | None:
        """The span that was current when the open transaction or savepoint whose span
        is ``span`` began (the application span), or None. For the rare paths that
        must name the application's span while a transaction span is current (pool
        exhaustion): it looks through the open transactions."""
        with self._lock:
            transactions = [entry[1] for entry in self._open.values()]
        for transaction in transactions:
            if transaction.root.span is span or any(
                scope.span is span for _, scope in transaction.savepoints
            ):
                return transaction.opened_under
        return None

    def current(self, key: Hashable) -> Transaction | None:
        if self._collected:
            self._settle_collected()
        entry = self._open.get(id(key))
        if entry is None or entry[0]() is not key:
            return None
        return entry[1]

    def _hold(self, key: Hashable) -> Any:
        try:
            return weakref.ref(key, self._collected_key)
        except TypeError:  # no weak references: held as before, until its COMMIT/ROLLBACK
            return _Strong(key)

    def _collected_key(self, ref: weakref.ref[Any]) -> None:
        # No lock, no span work here (see _collected): only note it.
        with contextlib.suppress(Exception):
            self._collected.append((id(ref), ref))

    def _settle_collected(self) -> None:
        """End the transactions of connections that were garbage-collected while open."""
        gone: list[Transaction] = []
        with self._lock:
            while self._collected:
                _, ref = self._collected.popleft()
                for key_id, (held, transaction) in list(self._open.items()):
                    if held is ref:
                        del self._open[key_id]
                        gone.append(transaction)
                        break
        for transaction in gone:
            self._finish(transaction, attr.OUTCOME_UNKNOWN, None)

    def begin(
        self,
        key: Hashable,
        name: str,
        attributes: Mapping[str, AttributeValue],
        *,
        make_current: bool = True,
        checked: int | None = None,
    ) -> Transaction:
        """Open a transaction on ``key`` (ending a forgotten one there as ``unknown``).

        ``checked``: :meth:`check` of ``attributes``, if they are the same every time (the
        span then starts without the SDK's cleaning pass)."""
        if self._orphans:
            self._settle_orphans()
        if self._collected:
            self._settle_collected()
        # Usually nothing is open on the key: looked up without the lock first.
        if id(key) in self._open:
            stale = self._take(key)
            if stale is not None:
                self._finish(stale, attr.OUTCOME_UNKNOWN, None)
        opened_under = trace.get_current_span()
        span = self._starter.start(name, None, transaction_start_attributes(attributes), checked)
        # The id, count and outcome reach the span as it ends (_end_scope), in one write.
        transaction_id = f"{span.get_span_context().span_id:016x}"
        token = context_api.attach(trace.set_span_in_context(span)) if make_current else None
        transaction = Transaction(
            transaction_id, _Scope(span, token, None, transaction_id), opened_under
        )
        evicted: list[Transaction] = []
        held = self._hold(key)
        with self._lock:
            self._open[id(key)] = (held, transaction)
            while len(self._open) > MAX_OPEN_TRANSACTIONS:
                evicted.append(self._open.popitem(last=False)[1][1])
        for old in evicted:
            self.evicted += 1
            self._finish(old, attr.OUTCOME_UNKNOWN, None)
        return transaction

    @staticmethod
    def check(attributes: Mapping[str, AttributeValue]) -> int | None:
        """``SpanStarter.check`` of a transaction span's start attributes."""
        return SpanStarter.check(transaction_start_attributes(attributes))

    def statement_started(
        self, key: Hashable, span: trace.Span, statement: object = None
    ) -> Transaction | None:
        """Tag a statement span with the open transaction on ``key``, if there is one;
        ``statement`` (its SQL text; ``None``: not seen, so it counts as a write) tells
        whether the transaction may have written."""
        transaction = self.current(key)
        if transaction is None:
            return None
        self.statement_in(transaction, span)
        self.statement_text(transaction, statement)
        return transaction

    @staticmethod
    def statement_text(transaction: Transaction, statement: object) -> None:
        """A statement is about to run in ``transaction``: note whether it can write."""
        scope = transaction.innermost
        if not scope.wrote and can_write(statement):
            scope.mark(wrote=True)

    def statement_failed(self, key: Hashable) -> None:
        """A statement of the transaction open on ``key`` failed: it cannot be
        ``released`` (it ends ``rolled_back`` unless it commits)."""
        transaction = self.current(key)
        if transaction is not None:
            transaction.innermost.mark(failed=True)

    def statement_in(self, transaction: Transaction, span: trace.Span) -> None:
        scope = transaction.innermost
        scope.statement_count += 1
        if scope is not transaction.root:
            transaction.root.statement_count += 1
        # Written when the statement ends (the holding stage reads it from the ended span).
        DEFERRED.add(span, {attr.TRANSACTION_ID: transaction.id})
        if len(transaction.statements) < MAX_STATEMENTS_REMEMBERED:
            transaction.statements[span.get_span_context().span_id] = scope

    def savepoint(self, key: Hashable, name: str) -> None:
        transaction = self.current(key)
        if transaction is None:
            return
        parent = transaction.innermost
        span = self._tracer.start_span(
            f"SAVEPOINT {name}" if name else "SAVEPOINT",
            context=trace.set_span_in_context(parent.span),
            kind=SpanKind.CLIENT,
            attributes={
                **_system_attributes(transaction.root.span),
                attr.TRANSACTION_ID: transaction.id,
                attr.TRANSACTION_STATEMENT_COUNT: 0,
            },
        )
        # Current only inside a transaction that is itself made current (LIFO with it).
        token = (
            context_api.attach(trace.set_span_in_context(span))
            if transaction.root.token is not None
            else None
        )
        transaction.savepoints.append((name, _Scope(span, token, parent, transaction.id)))
        transaction.had_savepoints = True

    def end_savepoint(self, key: Hashable, name: str, outcome: str) -> None:
        transaction = self.current(key)
        if transaction is None:
            return
        if not transaction.savepoints:
            return
        names = [saved for saved, _ in transaction.savepoints]
        # Some SQLAlchemy versions announce a savepoint before naming it: an unknown name
        # is the innermost one. Ending a savepoint also ends every savepoint inside it.
        index = names.index(name) if name in names else len(names) - 1
        inner = transaction.savepoints[index:]
        del transaction.savepoints[index:]
        for _, scope in reversed(inner):
            error = _current_error() if outcome == attr.OUTCOME_ROLLED_BACK else None
            self._end_scope(scope, _settled(scope, outcome, error), error)

    def end(self, key: Hashable, outcome: str, error: BaseException | None = None) -> None:
        """COMMIT / ROLLBACK / connection lost: end the transaction open on ``key``."""
        transaction = self._take(key)
        if transaction is None:
            return
        if transaction.lost:
            outcome = attr.OUTCOME_UNKNOWN
        if error is None and outcome == attr.OUTCOME_ROLLED_BACK:
            error = _current_error()
        self._finish(transaction, outcome, error)

    def mark_lost(self, key: Hashable) -> None:
        """The connection died mid-transaction: whatever ends it next, the outcome is unknown.

        Ending it here would happen inside the failing statement, while the statement
        span is current; the ROLLBACK that follows ends it in the right context.
        """
        transaction = self.current(key)
        if transaction is not None:
            transaction.lost = True

    def end_transaction(
        self, transaction: Transaction, outcome: str, error: BaseException | None = None
    ) -> None:
        """End a transaction that is not registered under a key (e.g. a Redis MULTI/EXEC)."""
        self._finish(transaction, outcome, error)

    def start_unregistered(
        self, name: str, attributes: Mapping[str, AttributeValue]
    ) -> Transaction:
        opened_under = trace.get_current_span()
        span = self._tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=transaction_start_attributes(attributes)
        )
        transaction_id = f"{span.get_span_context().span_id:016x}"
        token = context_api.attach(trace.set_span_in_context(span))
        return Transaction(transaction_id, _Scope(span, token, None, transaction_id), opened_under)

    def end_all(self, outcome: str = attr.OUTCOME_UNKNOWN) -> None:
        """End every open transaction (process shutdown)."""
        if self._collected:
            self._settle_collected()
        with self._lock:
            leftovers = [entry[1] for entry in self._open.values()]
            self._open.clear()
        for transaction in leftovers:
            self._finish(transaction, outcome, None)

    @property
    def open_count(self) -> int:
        return len(self._open)

    # -- internals ----------------------------------------------------------------

    def _take(self, key: Hashable) -> Transaction | None:
        if self._collected:
            self._settle_collected()
        with self._lock:
            entry = self._open.get(id(key))
            if entry is None or entry[0]() is not key:
                return None
            del self._open[id(key)]
            return entry[1]

    def _finish(self, transaction: Transaction, outcome: str, error: BaseException | None) -> None:
        # Savepoints still open when the transaction ends share its fate (their
        # RELEASE never ran: a COMMIT releases them, a ROLLBACK discards them).
        for _, scope in reversed(transaction.savepoints):
            self._end_scope(scope, _settled(scope, outcome, error), None)
        transaction.savepoints.clear()
        self._end_scope(transaction.root, _settled(transaction.root, outcome, error), error)
        # Exact for every statement (see _compact_resolution): the listeners get it too.
        compact = _compact_resolution(transaction)
        with self._lock:
            self._recent[transaction.id] = compact
            while len(self._recent) > MAX_RECENT_RESOLUTIONS:
                self._recent.popitem(last=False)
            listeners = self._listener_list
        for listener in listeners:
            try:
                listener.transaction_resolved(transaction.id, compact)
            except Exception as failure:
                FAILURES.report("releasing held statement spans", failure)

    def _end_scope(self, scope: _Scope, outcome: str, error: BaseException | None) -> None:
        scope.outcome = outcome
        span = scope.span
        write_transaction_end(span, scope.transaction_id, scope.statement_count, outcome, error)
        if scope.token is not None:
            if trace.get_current_span() is span:
                _detach(scope.token)
                span.end()
                if self._orphans:
                    self._settle_orphans()
                scope.token = None
                return
            self._remember_orphan(span, scope.token)
            scope.token = None
        span.end()

    def _remember_orphan(self, span: trace.Span, token: object) -> None:
        """A scope ended while not current (connections interleaved, another scope).

        Its context stays below the current one; if a later detach brings it back as the
        current context, it is detached then (see :meth:`_settle_orphans`).
        """
        with self._lock:
            self._orphans[id(span)] = (span, token)
            while len(self._orphans) > MAX_OPEN_TRANSACTIONS:
                self._orphans.popitem(last=False)

    def _settle_orphans(self) -> None:
        """Detach ended transaction contexts that have become current again."""
        for _ in range(64):  # bounded: each pass removes one level
            if not self._orphans:
                return
            current = trace.get_current_span()
            with self._lock:
                entry = self._orphans.get(id(current))
                if entry is None or entry[0] is not current:
                    return
                del self._orphans[id(current)]
            _detach(entry[1])


class _Strong:
    """A key without weak references, held like a dead-or-alive weak reference."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __call__(self) -> Any:
        return self.key


def _detach(token: object) -> None:
    # A token from another task's context: nothing to undo here.
    with contextlib.suppress(Exception):
        context_api.detach(token)


def write_transaction_end(
    span: trace.Span,
    transaction_id: str,
    statement_count: int,
    outcome: str,
    error: BaseException | None,
) -> None:
    """A transaction or savepoint span's facts, as it is about to end.

    Id, count and outcome go in one deferred write (the enrichment stage writes them as
    the span ends, instead of three locked writes on the live span); a rollback caused by
    ``error`` also marks the span as failed.
    """
    DEFERRED.add(
        span,
        {
            attr.TRANSACTION_ID: transaction_id,
            attr.TRANSACTION_STATEMENT_COUNT: statement_count,
            attr.TRANSACTION_OUTCOME: outcome,
        },
    )
    if error is not None and outcome == attr.OUTCOME_ROLLED_BACK:
        error_type = f"{type(error).__module__}.{type(error).__qualname__}"
        span.set_attribute(attr.ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, error_type))


def transaction_start_attributes(
    attributes: Mapping[str, AttributeValue],
) -> dict[str, AttributeValue]:
    """A transaction span's start attributes. A statement count of 0 marks it as a
    transaction from its start (so what reads the live or SDK-frozen span, such as
    ``QueryCapture`` beside the pipeline, never takes it for a statement); the real count
    replaces it as the span ends."""
    return {**attributes, attr.TRANSACTION_STATEMENT_COUNT: 0}


def _system_attributes(span: trace.Span) -> dict[str, AttributeValue]:
    attributes = getattr(span, "attributes", None) or {}
    keep = (
        attr.DB_SYSTEM_NAME,
        attr.LEGACY_DB_SYSTEM,
        attr.DB_NAMESPACE,
        attr.LEGACY_DB_NAME,
        attr.SERVER_ADDRESS,
        attr.SERVER_PORT,
    )
    return {key: attributes[key] for key in keep if key in attributes}


_tracker: TransactionTracker | None = None
_tracker_lock = threading.Lock()


def default_tracker() -> TransactionTracker:
    """The process's tracker, shared by the instrumentation and the holding stages."""
    global _tracker
    if _tracker is not None:  # every statement asks: no lock once it exists
        return _tracker
    with _tracker_lock:
        if _tracker is None:
            _tracker = TransactionTracker()
        return _tracker
