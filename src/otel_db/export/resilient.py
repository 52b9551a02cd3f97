"""A batching span processor that keeps failed batches and retries them.

The SDK's BatchSpanProcessor drops a batch the exporter could not deliver, and its
shutdown waits as long as the exporter does (15-30 s with a dead collector). This one:

- keeps spans in one bounded buffer (oldest first); a failed batch goes back to the
  front and is retried with exponential backoff; when the buffer is full the OLDEST span
  is dropped and counted, so memory stays bounded during a long outage;
- after a failed export to an OTLP collector, asks the collector's endpoint every 0.1 s
  whether it accepts connections again (``collector_probe``) and exports as soon as it
  does, instead of waiting for the exporter's and its own backoff;
- exports back-to-back after an outage until the backlog is gone;
- flushes and shuts down within a deadline, aborting an export stuck on a blackholed
  collector, and reports in one line what it could not deliver and why;
- does not let one span that the exporter cannot handle hold up the rest: an exporter
  that raises (instead of reporting a failure, as an unreachable collector does) for
  the same batch :data:`RAISES_BEFORE_ISOLATING` times in a row gets that batch in
  halves, down to single spans; the spans it still raises on are dropped with a
  warning naming the error, everything else is exported.

The hot path (``on_end``) takes a re-entrant lock and appends: no I/O, never raises.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import threading
import time
import weakref

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, Context, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_db.env_hygiene import mask_credentials
from otel_db.export.collector_probe import (
    PROBE_INTERVAL_S,
    accepts_connections,
    collector_address,
    reconnect,
)
from otel_db.export.report import ERRORS, ExportReport, attach_error_capture, is_refused

_logger = logging.getLogger("otel_db.export")

#: Default buffer, in spans, sized for the real span rate: a SQLAlchemy statement in a
#: transaction is two spans (the statement and its transaction), so 200 statements/s
#: are 400 spans/s and 16384 spans hold 41 s of them (a 30 s outage needs 12,000).
#: Memory: ~2.7 KB per buffered SQLAlchemy span (measured), ~45 MB when full.
DEFAULT_CAPACITY = 16384
DEFAULT_BATCH_SIZE = 512
DEFAULT_SCHEDULE_DELAY_S = 5.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 5.0
#: With a collector probe, exports are retried when it accepts connections again; this
#: backoff only spaces attempts the probe does not trigger (a probe that cannot tell).
PROBED_BACKOFF_MAX_S = 30.0
#: Consecutive raising exports of one batch before it is split to find what raises.
RAISES_BEFORE_ISOLATING = 3
_EXIT_MARGIN_S = 0.5
#: How long the exit waits to learn whether a collector that refused is back.
_EXIT_PROBE_TIMEOUT_S = 0.2


class _ExitHook:
    """Registers the bounded exit hook once, after configuration (see export.exit)."""

    done = False

    def __call__(self) -> None:
        from otel_db.export.exit import ensure_exit_hook

        _ExitHook.done = True
        ensure_exit_hook()


_exit_hook = _ExitHook()
_LIVE: weakref.WeakSet[ResilientBatchProcessor] = weakref.WeakSet()


def live_processors() -> list[ResilientBatchProcessor]:
    """Every processor of this process that is not shut down (for exit and SIGTERM)."""
    return [p for p in list(_LIVE) if not p.closed]


def _target(exporter: SpanExporter) -> str:
    endpoint = getattr(exporter, "_endpoint", None)
    name = type(exporter).__name__
    return mask_credentials(f"{name} {endpoint}") if endpoint else name


class ResilientBatchProcessor(SpanProcessor):
    def __init__(
        self,
        exporter: SpanExporter,
        *,
        capacity: int = DEFAULT_CAPACITY,
        batch_size: int = DEFAULT_BATCH_SIZE,
        schedule_delay_s: float = DEFAULT_SCHEDULE_DELAY_S,
        shutdown_timeout_s: float = 5.0,
        report_interval_s: float | None = None,
    ) -> None:
        self.exporter = exporter
        self.capacity = max(1, capacity)
        self.batch_size = max(1, min(batch_size, self.capacity))
        self.schedule_delay_s = schedule_delay_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self.report = ExportReport(_target(exporter))
        self._collector = collector_address(exporter)
        if report_interval_s is not None:
            self.report.interval_s = report_interval_s
        self.closed = False
        attach_error_capture()
        self._init_state()
        _LIVE.add(self)
        weak_reinit = weakref.WeakMethod(self._after_fork_in_child)

        def after_in_child() -> None:
            reinit = weak_reinit()
            if reinit is not None:
                reinit()

        os.register_at_fork(after_in_child=after_in_child)

    # -- state ---------------------------------------------------------------------------

    def _init_state(self) -> None:
        # An RLock: a SIGTERM handler runs on the main thread, possibly while that thread
        # is inside on_end holding this lock; it must be able to take it again.
        self._cond = threading.Condition(threading.RLock())
        self._buffer: collections.deque[ReadableSpan] = collections.deque()
        self._in_flight = 0
        self._failures = 0
        self._raised_in_a_row = 0
        self._retry_at = 0.0
        self._next_probe = 0.0
        self._last_export = time.monotonic()
        self._flush_until = 0.0
        self._closing_deadline: float | None = None
        self._worker = threading.Thread(target=self._run, name="otel_db-span-export", daemon=True)
        self._worker.start()

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist in the child and the parent's spans are the
        # parent's to export: start empty, with a fresh thread and a fresh gRPC channel
        # (a channel created before fork() is not usable after it).
        reconnect = getattr(self.exporter, "_initialize_channel_and_stub", None)
        if callable(reconnect):
            try:
                reconnect()
            except Exception as error:
                _logger.debug("otel_db: exporter reconnect after fork failed: %r", error)
        self.report = ExportReport(self.report.target, self.report.interval_s)
        if not self.closed:
            self._init_state()

    # -- span processor --------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        if not _exit_hook.done:
            _exit_hook()
        with self._cond:
            if self.closed:
                return
            if len(self._buffer) >= self.capacity:
                self._buffer.popleft()
                self.report.dropped_overflow += 1
            self._buffer.append(span)
            if len(self._buffer) == self.batch_size:
                self._cond.notify_all()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush_until(time.monotonic() + timeout_millis / 1000)

    def flush_until(self, deadline: float) -> bool:
        """Export everything queued, giving up at ``deadline`` (monotonic seconds)."""
        with self._cond:
            self._flush_until = max(self._flush_until, deadline)
            self._cond.notify_all()
            while self._buffer or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._worker.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    def shutdown(self) -> None:
        from otel_db.export.exit import current_exit_deadline

        deadline = time.monotonic() + self.shutdown_timeout_s
        exiting = current_exit_deadline()
        # A margin inside the exit deadline: the exit hook stops waiting for the provider
        # at the deadline, and this processor's summary line must be out by then.
        self.shutdown_until(min(deadline, exiting - _EXIT_MARGIN_S) if exiting else deadline)

    def shutdown_until(self, deadline: float) -> None:
        """Export what is queued until ``deadline``, then stop; never blocks past it."""
        with self._cond:
            if self.closed:
                return
            self._closing_deadline = deadline
            self._cond.notify_all()
            collector_back = False
            while (self._buffer or self._in_flight) and self._worker.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # A refused connection at exit: no collector is there, and retrying
                # until the deadline would only hold the process (a misspelled
                # exporter falls back to OTLP on localhost, where nothing listens).
                # ERRORS holds the OTLP exporters' own log lines: it says nothing of
                # another exporter (console) beside them, which must still be drained.
                # The refusal may be an outage's that is over: a collector that accepts
                # connections again gets the backlog until the deadline.
                if not collector_back and (
                    (self._collector is not None and is_refused(ERRORS.last_error))
                    or (self._failures and is_refused(self.report.last_reason))
                ):
                    collector_back = self._collector is not None and accepts_connections(
                        self._collector, timeout=min(remaining, _EXIT_PROBE_TIMEOUT_S)
                    )
                    if not collector_back:
                        break
                self._cond.wait(min(remaining, 0.1))
            self.closed = True
            lost = len(self._buffer) + self._in_flight
            stuck = self._in_flight > 0
            self._buffer.clear()
            self._cond.notify_all()
        # Shutting the exporter down aborts an export stuck on a blackholed collector
        # (the gRPC exporter cancels its call and its backoff wait).
        try:
            self.exporter.shutdown()
        except Exception as error:
            _logger.debug("otel_db: exporter shutdown failed: %r", error)
        self._worker.join(max(0.0, min(0.2, deadline - time.monotonic() + 0.2)))
        why = (
            "the collector did not answer within the exit bound "
            "(OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS)"
            if stuck or self._failures
            else "the exit bound (OTEL_PYTHON_DB_SHUTDOWN_TIMEOUT_MS) ended before they were sent"
        )
        if lost and not self.report.last_reason and self._collector is not None:
            self.report.last_reason = ERRORS.last_error
        self.report.at_exit(lost, why)

    # -- worker ----------------------------------------------------------------------------

    def _due(self, now: float) -> float:
        """When the next export should start (monotonic seconds)."""
        if not self._buffer:
            return now + self.schedule_delay_s
        if self._failures:
            retry_at = self._retry_at
            if self._closing_deadline is not None or self._flush_until > now:
                retry_at = min(retry_at, now + BACKOFF_FIRST_S)
            return retry_at
        if (
            self._closing_deadline is not None
            or self._flush_until > now
            or len(self._buffer) >= self.batch_size
        ):
            return now
        return self._last_export + self.schedule_delay_s

    def _probing(self) -> bool:
        """Whether the next export waits for the collector to accept connections."""
        return bool(self._failures and self._collector is not None and self._buffer)

    def _probe(self) -> None:
        """Outside the lock: export now if the collector accepts connections again."""
        assert self._collector is not None
        back = accepts_connections(self._collector)
        if back:
            reconnect(self.exporter)  # not the channel the outage left in backoff
        with self._cond:
            now = time.monotonic()
            self._next_probe = now + PROBE_INTERVAL_S
            if back:
                self._retry_at = now

    def _run(self) -> None:
        cond = self._cond
        while True:
            probe = False
            with cond:
                while True:
                    if self.closed or cond is not self._cond:
                        return
                    now = time.monotonic()
                    if self._closing_deadline is not None and not self._buffer:
                        return
                    due = self._due(now)
                    if due <= now:
                        break
                    if self._probing():
                        if now >= self._next_probe:
                            probe = True
                            break
                        due = min(due, self._next_probe)
                    cond.wait(due - now)
                    if not _exit_hook.done:
                        _exit_hook()
                if not probe:
                    count = min(self.batch_size, len(self._buffer))
                    batch = [self._buffer.popleft() for _ in range(count)]
                    self._in_flight = count
            if probe:
                self._probe()
                continue
            ok, reason, raised = self._send(batch)
            self._raised_in_a_row = self._raised_in_a_row + 1 if raised else 0
            if raised and self._raised_in_a_row >= RAISES_BEFORE_ISOLATING:
                self._raised_in_a_row = 0
                exported, batch, reason = self._isolate(batch, reason)
                ok = not batch
                if exported:
                    self.report.success(exported)
            with cond:
                if cond is not self._cond:  # forked meanwhile (only in the child)
                    return
                self._in_flight = 0
                self._last_export = time.monotonic()
                if ok:
                    self._failures = 0
                else:
                    self._failures += 1
                    if not self.closed:
                        self._requeue(batch)
                    delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (self._failures - 1))
                    if self._collector is not None:
                        # The probe says when to retry; the backoff is only a safety net.
                        delay = PROBED_BACKOFF_MAX_S
                    self._retry_at = self._last_export + delay * random.uniform(0.8, 1.2)
                    # The first probe comes after the shortest backoff: a collector that
                    # accepts connections but fails exports is not asked again at once.
                    self._next_probe = self._last_export + BACKOFF_FIRST_S
                pending = len(self._buffer)
                cond.notify_all()
            if ok:
                if batch:
                    self.report.success(len(batch))
            elif not self.closed:
                self.report.failure(reason, pending, self.capacity)
            self.report.check_drops(self.capacity)

    def _requeue(self, batch: list[ReadableSpan]) -> None:
        # Back to the front, oldest first; what no longer fits is the oldest: drop it.
        self._buffer.extendleft(reversed(batch))
        while len(self._buffer) > self.capacity:
            self._buffer.popleft()
            self.report.dropped_overflow += 1

    def _send(self, batch: list[ReadableSpan]) -> tuple[bool, str, bool]:
        """(delivered, why not, whether the exporter raised)."""
        ERRORS.last_error = None
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            result = self.exporter.export(batch)
        except Exception as error:
            return False, mask_credentials(f"{type(error).__name__}: {error}")[:300], True
        finally:
            detach(token)
        if result is SpanExportResult.SUCCESS:
            return True, "", False
        return False, ERRORS.last_error or "the exporter reported a failure", False

    def _isolate(
        self, batch: list[ReadableSpan], reason: str
    ) -> tuple[int, list[ReadableSpan], str]:
        """Export ``batch``, which the exporter just raised on (``reason``), in ever
        smaller parts, dropping the single spans that raise.

        Returns (spans exported, spans still to send, the last failure). Spans are left
        to send, in their order, when a part fails without raising: the exporter is
        failing as a whole (collector down), and the usual retries take over. At most
        ``2 * len(batch) - 2`` exports.
        """
        exported = dropped = 0
        if len(batch) == 1:
            self._warn_dropped(1, reason)
            return 0, [], reason
        middle = len(batch) // 2
        parts = [batch[middle:], batch[:middle]]  # popped from the end: the order is kept
        while parts:
            part = parts.pop()
            ok, why, raised = self._send(part)
            if ok:
                exported += len(part)
                continue
            reason = why
            if not raised:
                unsent = list(part)
                for rest in reversed(parts):
                    unsent.extend(rest)
                self._warn_dropped(dropped, reason)
                return exported, unsent, reason
            if len(part) == 1:
                dropped += 1
                continue
            middle = len(part) // 2
            parts.append(part[middle:])
            parts.append(part[:middle])  # popped first: the order is kept
        self._warn_dropped(dropped, reason)
        return exported, [], reason

    def _warn_dropped(self, dropped: int, reason: str) -> None:
        if not dropped:
            return
        self.report.dropped_unexportable += dropped
        _logger.warning(
            "otel_db: %d span(s) dropped: %s raised on each of them (%s); "
            "the other spans of their batch were exported",
            dropped,
            self.report.target,
            reason,
        )
