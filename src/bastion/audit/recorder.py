"""The audit recorder: a bounded queue between request handlers and the sinks.

``record()`` only puts the event in the queue, so a slow or failing database never slows a
request, and a flood of events cannot exhaust memory (the queue is bounded). What cannot be
queued is counted in ``dropped_total``, logged (at most once a second, with the running count)
and, as soon as the writer can, recorded as an ``audit:queue:overflowed`` event: an attacker who
floods the queue to hide an action leaves a visible gap in the trail, never a silent one.

A background task writes batches to every sink; a failing sink is retried with exponential
backoff a bounded number of times, then the batch is counted in ``failed_total`` for that
failure. ``aclose()`` flushes what is queued (bounded by a timeout) and counts what is left as
dropped.

Group commit: woken by an event, the writer waits up to ``flush_delay`` for a full batch before
writing (at once when the batch fills, or when closing). A chained database append costs about
as much per transaction as 20 rows, so at a moderate request rate, one transaction per event
would multiply the trail's cost; events wait in memory a little longer instead (they were never
written synchronously).

The writer shares the event loop with the requests, so it never holds it for long: it wakes
only after the step that recorded the event (the route's own step, which hands the response
to the transport when the route does not wait on anything after recording), and every sink
works in slices with the loop running between two (the database sink's preparation, MACs
and inserts, its subscribers, the log sink's lines): :data:`WRITE_SLICE` events while the
writer keeps up, so a request that arrives while a batch is written waits for one slice, not
for the batch. The loop gives the writer one turn per iteration, like any other task; when
events arrive faster than small slices write them (each iteration of a saturated worker serves
a request per connection), the slices grow to the backlog the writer finds after taking a
batch, up to the whole batch: the writer catches up instead of letting the queue fill.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Callable, Sequence

from bastion.audit.capture import Captured, event_of
from bastion.audit.chain import utc_stamp
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditSink
from bastion.audit.scrub import (  # re-exported: the recorder's public names before the split
    MAX_DETAIL_DEPTH,
    MAX_DETAIL_STRING_CHARS,
    TRUNCATED,
    ScrubbedDetails,
    clean_text,
    scrub,
    scrub_mapping,
    with_details,
)
from bastion.clock import Clock, SystemClock
from bastion.errors import BastionError
from bastion.logging import get_logger

__all__ = [
    "CLOSE_TIMEOUT_SECONDS",
    "DROP_REPORT_INTERVAL_SECONDS",
    "FLUSH_DELAY_SECONDS",
    "MAX_DETAIL_DEPTH",
    "MAX_DETAIL_STRING_CHARS",
    "RETRY_ATTEMPTS",
    "TRUNCATED",
    "WRITE_SLICE",
    "Batch",
    "QueueAuditRecorder",
    "ScrubbedDetails",
    "clean_text",
    "scrub",
    "scrub_mapping",
    "with_details",
]

logger = get_logger("bastion.audit.recorder")
_kind = type

CLOSE_TIMEOUT_SECONDS = 10.0
RETRY_ATTEMPTS = 5
RETRY_BASE_DELAY_SECONDS = 0.1
RETRY_MAX_DELAY_SECONDS = 5.0
#: How long the writer waits for a batch to fill before writing what it has.
FLUSH_DELAY_SECONDS = 0.05
#: While the writer keeps up, at most this many events are prepared, chained and inserted,
#: handed to subscribers or logged by a sink between two yields to the event loop (about
#: 1.5 million instructions for the database sink's inserts): about the longest a request waits
#: behind the writer. A writer that falls behind writes larger slices (see the module docstring).
WRITE_SLICE = 16
#: At most one "dropped" log line and one overflow event per interval, however hard the flood.
DROP_REPORT_INTERVAL_SECONDS = 1.0


class Batch(list[AuditEvent]):
    """A batch as the recorder hands it to every sink, with room for what more than one sink
    formats per event: the first sink that formats the event's UTC stamp (``stamps``) or its
    scrubbed details' JSON text (``details_json``, ``json.dumps``' bytes) stores it at the event's
    index, and the others reuse it (see :mod:`bastion.audit.sinks`), and the size of the slices
    the sinks write it in (``slice_size``). Sinks must not change it.
    """

    __slots__ = ("details_json", "slice_size", "stamps")

    def __init__(
        self,
        events: Sequence[AuditEvent],
        slice_size: int = WRITE_SLICE,
        stamps: list[str | None] | None = None,
    ) -> None:
        super().__init__(events)
        #: ``stamps`` given: the recorder's (its captured events' stamps, None for the others).
        self.stamps: list[str | None] = [None] * len(self) if stamps is None else stamps
        self.details_json: list[str | None] = [None] * len(self)
        #: How many events a sink handles between two yields to the event loop.
        self.slice_size = max(1, slice_size)


#: What the queue holds: an event, or an event captured on the request path (built by the writer).
Queued = AuditEvent | Captured


class _EventQueue(asyncio.Queue[Queued]):
    """asyncio's bounded queue with the writer's bulk operations: :meth:`take` is
    ``get_nowait`` repeated and :meth:`done` ``task_done`` repeated, in one call each (the
    writer takes and finishes whole batches), and :meth:`put_now`, ``put_nowait`` inlined for
    ``record()`` (``join`` and ``qsize`` are asyncio's own). They use the state asyncio.Queue
    keeps (the same attributes from Python 3.11 to 3.13; ``tests/unit/audit/test_recorder.py``
    checks them against asyncio's own calls)."""

    _queue: collections.deque[Queued]
    _maxsize: int
    _getters: collections.deque[asyncio.Future[None]]
    _putters: collections.deque[asyncio.Future[None]]
    _unfinished_tasks: int
    _finished: asyncio.Event
    _wakeup_next: Callable[[collections.deque[asyncio.Future[None]]], None]

    def put_now(self, item: Queued) -> int:
        """``put_nowait(item)`` (raises QueueFull alike) without its method calls; returns the
        queue's size after it. The queue must be bounded (the recorder's always is)."""
        items = self._queue
        if len(items) >= self._maxsize:
            raise asyncio.QueueFull
        items.append(item)
        self._unfinished_tasks += 1
        if self._finished._value:  # type: ignore[attr-defined]  # noqa: SLF001 - Event's flag
            self._finished.clear()
        if self._getters:
            self._wakeup_next(self._getters)
        return len(items)

    def take(self, limit: int) -> list[Queued]:
        """Up to ``limit`` queued events, oldest first (none when the queue is empty)."""
        items = self._queue  # asyncio.Queue's deque (its _init/_get subclassing hooks use it)
        taken = [items.popleft() for _ in range(min(limit, len(items)))]
        for _ in range(min(len(taken), len(self._putters))):
            self._wakeup_next(self._putters)  # as get_nowait does for each item
        return taken

    def done(self, count: int) -> None:
        """``task_done()`` ``count`` times."""
        if count > self._unfinished_tasks:
            raise ValueError("task_done() called too many times")
        self._unfinished_tasks -= count
        if self._unfinished_tasks == 0:
            self._finished.set()


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class QueueAuditRecorder:
    """An :class:`~bastion.audit.interfaces.AuditRecorder` over a bounded asyncio queue.

    Events recorded before :meth:`start` wait in the queue; the writer waits up to
    ``flush_delay`` seconds for a full batch (see the module docstring). Counters (for the metrics
    collector): ``queue_depth``; ``dropped_total`` (never queued: queue full, recorder closed,
    or still queued when ``aclose`` timed out); ``written_total`` (written to every sink);
    ``failed_total`` (a sink still failed after every retry).
    """

    def __init__(
        self,
        sinks: Sequence[AuditSink],
        queue_size: int,
        batch_size: int,
        *,
        clock: Clock | None = None,
        close_timeout: float = CLOSE_TIMEOUT_SECONDS,
        retry_attempts: int = RETRY_ATTEMPTS,
        retry_base_delay: float = RETRY_BASE_DELAY_SECONDS,
        flush_delay: float = FLUSH_DELAY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or retry_attempts < 1:
            raise ValueError("queue_size, batch_size and retry_attempts must be positive")
        if flush_delay < 0:
            raise ValueError("flush_delay must not be negative")
        self._sinks = tuple(sinks)
        self._queue = _EventQueue(maxsize=queue_size)
        self._batch_size = batch_size
        self._clock = clock or SystemClock()
        self._close_timeout = close_timeout
        self._retry_attempts = retry_attempts
        self._retry_base_delay = retry_base_delay
        self._flush_delay = flush_delay
        self._monotonic = monotonic
        self._task: asyncio.Task[None] | None = None
        #: Set while the writer waits for its batch to fill (see :meth:`_fill`).
        self._filling: asyncio.Future[None] | None = None
        self._closing = False
        self._closed = False
        self._in_flight = 0
        self._dropped = 0
        self._written = 0
        self._failed = 0
        self._unreported_drops = 0
        self._last_drop_log = -math.inf
        self._last_overflow_event = -math.inf
        #: The last whole second (since the epoch) a captured event was stamped in, and its text.
        self._second: tuple[int | None, str] = (None, "")

    # -- counters ---------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def dropped_total(self) -> int:
        return self._dropped

    @property
    def written_total(self) -> int:
        return self._written

    @property
    def failed_total(self) -> int:
        return self._failed

    # -- the request path -------------------------------------------------------------------
    def record(self, event: AuditEvent) -> None:
        """Queue ``event``. Never blocks, never raises."""
        if self._closed:
            self._drop("recorder_closed")
            return
        try:
            if type(event.details) is not ScrubbedDetails:
                # Empty details too: the caller's dict must not be shared with the queued event.
                event = with_details(event, scrub(event.details))
            size = self._queue.put_now(event)
            if self._filling is not None and size >= self._batch_size - 1:
                _release(self._filling)  # the batch is full: no reason to wait
        except asyncio.QueueFull:
            self._drop("queue_full")
        except Exception:  # noqa: BLE001 - an audit failure must not fail the request
            self._drop("invalid_event")

    def record_captured(self, item: Captured) -> None:
        """Queue an event captured by :func:`bastion.audit.context.record_from_scope` (the writer
        builds its :class:`AuditEvent`). Never blocks, never raises; counted as ``record``."""
        # _EventQueue.put_now inlined (one call less on the request path; the test compares
        # the two): append, count it unfinished, clear "finished", wake a waiting writer.
        queue = self._queue
        items = queue._queue  # noqa: SLF001
        if self._closed or len(items) >= queue._maxsize:  # noqa: SLF001
            self._drop("recorder_closed" if self._closed else "queue_full")
            return
        items.append(item)
        queue._unfinished_tasks += 1  # noqa: SLF001
        finished = queue._finished  # noqa: SLF001
        if finished._value:  # type: ignore[attr-defined]  # noqa: SLF001 - Event's flag
            finished.clear()
        if queue._getters:  # noqa: SLF001
            queue._wakeup_next(queue._getters)  # noqa: SLF001
        if self._filling is not None and len(items) >= self._batch_size - 1:
            _release(self._filling)  # the batch is full: no reason to wait

    def drop_invalid(self) -> None:
        """Count an event that could not be captured (as ``record`` counts an invalid one)."""
        self._drop("invalid_event")

    def _drop(self, reason: str) -> None:
        self._dropped += 1
        self._unreported_drops += 1
        now = self._monotonic()
        if now - self._last_drop_log >= DROP_REPORT_INTERVAL_SECONDS:
            self._last_drop_log = now
            logger.warning(
                "audit_events_dropped",
                reason=reason,
                dropped_total=self._dropped,
                queue_size=self._queue.maxsize,
            )

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the background writer (idempotent)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="bastion-audit-writer")

    async def aclose(self) -> None:
        """Write every queued event (within the close timeout), then stop (idempotent)."""
        if self._closed:
            return
        await self.start()
        self._closing = True
        if self._filling is not None:
            _release(self._filling)
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._queue.join()
                if self._unreported_drops:
                    await self._write([self._overflow_event()])
        except TimeoutError:
            pass
        self._closed = True
        lost = self._queue.qsize() + self._in_flight
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            self._queue.get_nowait()
        if lost:
            self._dropped += lost
            logger.error("audit_events_lost_on_close", lost=lost, dropped_total=self._dropped)

    # -- the writer -------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._in_flight = 1
            await self._fill()
            batch += self._queue.take(self._batch_size - 1)
            self._in_flight = len(batch)
            # Slices as large as the backlog behind this batch: a writer that falls behind
            # takes longer turns until it catches up (see the module docstring).
            slice_size = max(WRITE_SLICE, self._queue.qsize())
            try:
                events, stamps = self._events(batch)
                noticed = self._with_overflow_notice(events)
                if len(noticed) > len(events):
                    stamps = [None, *stamps]
                if noticed:
                    await self._write(noticed, slice_size, stamps)
            finally:
                self._in_flight = 0
                self._queue.done(len(batch))

    def _events(self, batch: list[Queued]) -> tuple[list[AuditEvent], list[str | None]]:
        """The batch's events, captured ones built (see :mod:`bastion.audit.capture`), and their
        UTC stamps (:func:`~bastion.audit.chain.utc_stamp`): a captured event's from its
        nanoseconds, the second's text remembered (None for the others: the sinks make those)."""
        events: list[AuditEvent] = []
        stamps: list[str | None] = []
        second, head = self._second
        for item in batch:
            if _kind(item) is not tuple:  # an AuditEvent, from record()
                events.append(item)  # type: ignore[arg-type]
                stamps.append(None)
                continue
            try:
                event = event_of(item)
            except Exception:  # noqa: BLE001 - one bad capture must not stop the writer
                self._drop("invalid_event")
                continue
            events.append(event)
            when = item[0]
            if _kind(when) is not int:  # a test clock's datetime
                stamps.append(None)
                continue
            micro = when // 1000
            whole = micro // 1_000_000
            if whole != second:  # "YYYY-MM-DDTHH:MM:SS." (the clock's years have four digits)
                second, head = whole, utc_stamp(event.time)[:-7]
            # The microseconds as "%06d" formats them, without the format's cost.
            stamps.append(f"{head}{str(micro - whole * 1_000_000 + 1_000_000)[1:]}Z")
        self._second = (second, head)
        return events, stamps

    async def _fill(self) -> None:
        """Wait until a batch is full, ``flush_delay`` has passed, or the recorder closes."""
        if self._closing or not self._flush_delay or self._queue.qsize() >= self._batch_size - 1:
            return
        loop = asyncio.get_running_loop()
        self._filling = loop.create_future()
        timer = loop.call_later(self._flush_delay, _release, self._filling)
        try:
            await self._filling
        finally:
            timer.cancel()
            self._filling = None

    def _with_overflow_notice(self, batch: list[AuditEvent]) -> list[AuditEvent]:
        now = self._monotonic()
        if (
            self._unreported_drops
            and now - self._last_overflow_event >= DROP_REPORT_INTERVAL_SECONDS
        ):
            self._last_overflow_event = now
            return [self._overflow_event(), *batch]
        return batch

    def _overflow_event(self) -> AuditEvent:
        dropped, self._unreported_drops = self._unreported_drops, 0
        return AuditEvent(
            type=EventType.AUDIT_QUEUE_OVERFLOWED,
            outcome=Outcome.FAILURE,
            time=self._clock.now(),
            reason="queue_full",
            details={"dropped": dropped, "dropped_total": self._dropped},
        )

    async def _write(
        self,
        events: list[AuditEvent],
        slice_size: int = WRITE_SLICE,
        stamps: list[str | None] | None = None,
    ) -> None:
        batch = Batch(events, slice_size, stamps)
        results = await self._write_all(batch)
        if all(results):
            self._written += len(events)
        else:
            self._failed += len(events)

    async def _write_all(self, batch: Batch) -> list[bool]:
        """Every sink's :meth:`_write_to` of ``batch``, concurrently and in the sinks' order, as
        ``asyncio.gather`` would run them: the other sinks in tasks made first, the first sink
        in the writer's own task (no task, no gathering future and one loop turn less a batch;
        it starts before the others' first steps, as the first of gather's tasks does)."""
        if not self._sinks:
            return []
        first, *others = self._sinks
        tasks = [asyncio.create_task(self._write_to(sink, batch)) for sink in others]
        try:
            results = [await self._write_to(first, batch)]
            results += [await task for task in tasks]
        except BaseException:  # cancelled (aclose): the others stop too, as gather's children
            for task in tasks:
                task.cancel()
            raise
        return results

    async def _write_to(self, sink: AuditSink, events: list[AuditEvent]) -> bool:
        delay = self._retry_base_delay
        name = type(sink).__name__
        for attempt in range(1, self._retry_attempts + 1):
            try:
                await sink.write(events)
            except Exception as exc:  # noqa: BLE001 - any sink failure is retried, then counted
                # Only the error's code or class is logged: a driver's message can quote values.
                error = exc.code if isinstance(exc, BastionError) else type(exc).__name__
            else:
                return True
            if attempt == self._retry_attempts:
                logger.error(
                    "audit_sink_gave_up",
                    sink=name,
                    error=error,
                    attempts=attempt,
                    events=len(events),
                )
                break
            logger.warning("audit_sink_failed", sink=name, error=error, attempt=attempt)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_SECONDS)
        return False
