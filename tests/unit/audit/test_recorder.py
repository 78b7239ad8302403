"""QueueAuditRecorder: never blocks or raises, never drops silently, flushes on close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from bastion.audit.errors import AuditWriteFailed
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.audit.recorder import (
    MAX_DETAIL_STRING_CHARS,
    TRUNCATED,
    WRITE_SLICE,
    Batch,
    QueueAuditRecorder,
    _EventQueue,
)
from bastion.audit.sinks import InMemorySink
from bastion.clock import FrozenClock


def make_event(n: int = 0, **details: Any) -> AuditEvent:
    return AuditEvent(
        type=EventType.HTTP_REQUEST_REJECTED,
        outcome=Outcome.FAILURE,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        request_id=f"req-{n}",
        details=details,
    )


class GateSink:
    """Blocks every write until the gate opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.events: list[AuditEvent] = []

    async def write(self, events: Sequence[AuditEvent]) -> None:
        await self.gate.wait()
        self.events.extend(events)


class FlakySink:
    """Fails the first ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.events: list[AuditEvent] = []

    async def write(self, events: Sequence[AuditEvent]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise AuditWriteFailed
        self.events.extend(events)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recorder(*sinks: Any, **options: Any) -> QueueAuditRecorder:
    options.setdefault("queue_size", 100)
    options.setdefault("batch_size", 10)
    options.setdefault("retry_base_delay", 0.001)
    return QueueAuditRecorder(list(sinks), clock=FrozenClock(), **options)


def ids(events: Sequence[AuditEvent]) -> list[str | None]:
    return [e.request_id for e in events if e.type is not EventType.AUDIT_QUEUE_OVERFLOWED]


def test_it_is_an_audit_recorder() -> None:
    rec: AuditRecorder = recorder(InMemorySink())
    assert rec is not None


async def test_events_recorded_before_start_are_written_after() -> None:
    sink = InMemorySink()
    rec = recorder(sink)
    for n in range(5):
        rec.record(make_event(n))
    assert rec.queue_depth == 5
    await rec.start()
    await rec.aclose()
    assert ids(sink.events) == [f"req-{n}" for n in range(5)]
    assert (rec.queue_depth, rec.written_total, rec.dropped_total, rec.failed_total) == (0, 5, 0, 0)


async def test_close_flushes_everything_in_batches() -> None:
    sink = InMemorySink()
    rec = recorder(sink, queue_size=1000, batch_size=7)
    await rec.start()
    for n in range(100):
        rec.record(make_event(n))
    await rec.aclose()
    assert ids(sink.events) == [f"req-{n}" for n in range(100)]
    assert rec.written_total == 100


async def test_close_without_start_still_flushes() -> None:
    sink = InMemorySink()
    rec = recorder(sink)
    rec.record(make_event(1))
    await rec.aclose()
    await rec.aclose()  # idempotent
    assert ids(sink.events) == ["req-1"]


async def test_overflow_is_counted_logged_and_recorded_never_silent() -> None:
    sink = InMemorySink()
    clock = FakeMonotonic()
    rec = recorder(sink, queue_size=10, monotonic=clock)
    with capture_logs() as logs:
        for n in range(25):
            rec.record(make_event(n))
        clock.now += 1.0
        rec.record(make_event(99))
    assert rec.dropped_total == 16
    assert rec.queue_depth == 10
    warnings = [log for log in logs if log["event"] == "audit_events_dropped"]
    # Rate-limited: one line for the burst, one more a second later, with the running count.
    assert [w["dropped_total"] for w in warnings] == [1, 16]
    assert all(w["log_level"] == "warning" and w["reason"] == "queue_full" for w in warnings)

    await rec.aclose()
    overflow = [e for e in sink.events if e.type is EventType.AUDIT_QUEUE_OVERFLOWED]
    assert len(overflow) == 1
    assert overflow[0].details == {"dropped": 16, "dropped_total": 16}
    assert ids(sink.events) == [f"req-{n}" for n in range(10)]


@pytest.mark.timing
async def test_a_slow_sink_does_not_block_record() -> None:
    sink = GateSink()
    rec = recorder(sink, queue_size=1000, batch_size=5)
    await rec.start()
    started = time.perf_counter()
    for n in range(200):
        rec.record(make_event(n))
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.01)  # the writer takes a batch and waits on the sink
    assert elapsed < 0.1
    assert rec.queue_depth == 195
    assert sink.events == []
    sink.gate.set()
    await rec.aclose()
    assert len(sink.events) == 200


async def test_a_failing_sink_is_retried() -> None:
    flaky = FlakySink(failures=2)
    steady = InMemorySink()
    rec = recorder(flaky, steady)
    rec.record(make_event(1))
    with capture_logs() as logs:
        await rec.aclose()
    assert ids(flaky.events) == ["req-1"]
    assert ids(steady.events) == ["req-1"]
    assert flaky.calls == 3
    failures = [log for log in logs if log["event"] == "audit_sink_failed"]
    assert [f["attempt"] for f in failures] == [1, 2]
    assert failures[0]["error"] == "audit_write_failed"
    assert (rec.written_total, rec.failed_total) == (1, 0)


async def test_a_sink_that_keeps_failing_is_given_up_and_counted() -> None:
    broken = FlakySink(failures=1000)
    steady = InMemorySink()
    rec = recorder(broken, steady, retry_attempts=3)
    for n in range(4):
        rec.record(make_event(n))
    with capture_logs() as logs:
        await rec.aclose()
    assert broken.calls == 3
    assert len(steady.events) == 4  # the other sink is not held hostage
    assert (rec.written_total, rec.failed_total) == (0, 4)
    gave_up = [log for log in logs if log["event"] == "audit_sink_gave_up"]
    assert gave_up == [
        {
            "event": "audit_sink_gave_up",
            "log_level": "error",
            "sink": "FlakySink",
            "error": "audit_write_failed",
            "attempts": 3,
            "events": 4,
        }
    ]


async def test_close_is_bounded_and_counts_what_it_could_not_write() -> None:
    sink = GateSink()  # never opens
    rec = recorder(sink, batch_size=2, close_timeout=0.05)
    for n in range(5):
        rec.record(make_event(n))
    with capture_logs() as logs:
        await rec.aclose()
    assert rec.dropped_total == 5
    assert [log["lost"] for log in logs if log["event"] == "audit_events_lost_on_close"] == [5]


async def test_events_after_close_are_counted_and_logged() -> None:
    rec = recorder(InMemorySink())
    await rec.start()
    await rec.aclose()
    with capture_logs() as logs:
        rec.record(make_event(1))
    assert rec.dropped_total == 1
    assert logs[0]["reason"] == "recorder_closed"


async def test_secrets_in_details_are_redacted() -> None:
    sink = InMemorySink()
    rec = recorder(sink)
    details: dict[str, Any] = {
        "password": "hunter2",
        "headers": {"Authorization": "Bearer abc", "Cookie": "sid=1", "accept": "json"},
        "attempts": [{"otp_code": "123456", "step": 1}],
        "client_secret": "s3cr3t",
        "apiKey": "k",
        "user": "alice",
    }
    rec.record(make_event(1, **details))
    details["user"] = "mallory"  # mutating the caller's dict afterwards changes nothing
    await rec.aclose()
    assert sink.events[0].details == {
        "password": "[redacted]",
        "headers": {"Authorization": "[redacted]", "Cookie": "[redacted]", "accept": "json"},
        "attempts": [{"otp_code": "[redacted]", "step": 1}],
        "client_secret": "[redacted]",
        "apiKey": "[redacted]",
        "user": "alice",
    }


async def test_details_are_made_json_safe_and_bounded() -> None:
    sink = InMemorySink()
    rec = recorder(sink)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(20):
        node["next"] = {}
        node = node["next"]
    rec.record(
        make_event(
            1,
            when=datetime(2026, 1, 1, tzinfo=UTC),
            nan=float("nan"),
            long="x" * 5000,
            deep=deep,
            tags={"a"},
            count=3,
            ratio=0.5,
            flag=True,
        )
    )
    await rec.aclose()
    details = sink.events[0].details
    assert details["when"] == "2026-01-01 00:00:00+00:00"
    assert details["nan"] == "nan"
    assert details["long"] == "x" * MAX_DETAIL_STRING_CHARS + TRUNCATED
    assert TRUNCATED in repr(details["deep"])
    assert (details["tags"], details["count"], details["ratio"], details["flag"]) == (
        ["a"],
        3,
        0.5,
        True,
    )


async def test_record_never_raises() -> None:
    class Hostile(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("boom")

    rec = recorder(InMemorySink())
    event = AuditEvent(
        type=EventType.HTTP_REQUEST_FAILED,
        outcome=Outcome.FAILURE,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        details=Hostile(a=1),
    )
    with capture_logs() as logs:
        rec.record(event)
    assert rec.dropped_total == 1
    assert logs[0]["reason"] == "invalid_event"
    await rec.aclose()


@pytest.mark.parametrize("bad", [{"queue_size": 0}, {"batch_size": 0}, {"retry_attempts": 0}])
def test_sizes_must_be_positive(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        recorder(InMemorySink(), **bad)


class BatchSink:
    """Remembers the size of every batch written."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.written = asyncio.Event()

    async def write(self, events: Sequence[AuditEvent]) -> None:
        self.batches.append(len(events))
        self.written.set()


async def test_the_writer_waits_for_a_full_batch_then_writes_it_at_once() -> None:
    # Group commit: one transaction per event would multiply the trail's cost at moderate rates.
    sink = BatchSink()
    rec = recorder(sink, batch_size=5, flush_delay=60.0)
    await rec.start()
    for n in range(2):
        rec.record(make_event(n))
    for _ in range(10):
        await asyncio.sleep(0)
    assert sink.batches == []  # waiting for the batch to fill
    for n in range(2, 5):
        rec.record(make_event(n))
    for _ in range(10):
        await asyncio.sleep(0)
    assert sink.batches == [5]
    rec.record(make_event(5))
    await asyncio.wait_for(rec.aclose(), timeout=10)  # closing does not wait out the delay
    assert sink.batches == [5, 1]
    assert rec.written_total == 6


async def test_a_partial_batch_is_written_after_the_flush_delay() -> None:
    sink = BatchSink()
    rec = recorder(sink, batch_size=100, flush_delay=0.01)
    await rec.start()
    rec.record(make_event(1))
    rec.record(make_event(2))
    await asyncio.wait_for(sink.written.wait(), timeout=10)
    assert sink.batches == [2]
    await rec.aclose()


def test_a_negative_flush_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="flush_delay"):
        recorder(InMemorySink(), flush_delay=-1)


async def test_every_sink_gets_the_same_batch_to_share_formatting() -> None:
    # The sinks reuse what another formatted (UTC stamp, details' JSON) through one Batch.
    seen: list[Sequence[AuditEvent]] = []

    class Keeper:
        async def write(self, events: Sequence[AuditEvent]) -> None:
            seen.append(events)

    rec = recorder(Keeper(), Keeper())
    rec.record(make_event(1))
    rec.record(make_event(2))
    await rec.aclose()
    assert len(seen) == 2
    assert seen[0] is seen[1]
    assert type(seen[0]) is Batch
    assert ids(seen[0]) == ["req-1", "req-2"]
    assert seen[0].stamps == seen[0].details_json == [None, None]


async def test_the_writer_s_bulk_take_and_done_are_get_nowait_and_task_done_repeated() -> None:
    # The writer takes and finishes a batch in one call each; the queue must end in the same
    # state as with asyncio's one-by-one calls (order, size, join, putters woken).
    bulk, single = _EventQueue(maxsize=3), asyncio.Queue[AuditEvent](maxsize=3)
    events = [make_event(n) for n in range(5)]
    putters = []
    for queue in (bulk, single):
        for item in events[:3]:
            queue.put_nowait(item)
        putters.append(asyncio.create_task(queue.put(events[3])))  # waits: the queue is full
    await asyncio.sleep(0)
    taken = bulk.take(2)
    got = [single.get_nowait() for _ in range(2)]
    assert taken == got == events[:2]
    assert bulk.qsize() == single.qsize() == 1
    await asyncio.sleep(0)
    assert all(putter.done() for putter in putters)  # a slot freed: the waiting put went in
    assert bulk.qsize() == single.qsize() == 2
    assert bulk.take(10) == [single.get_nowait() for _ in range(2)] == [events[2], events[3]]
    assert bulk.take(10) == []
    joined = asyncio.create_task(bulk.join())
    bulk.done(3)
    await asyncio.sleep(0)
    assert not joined.done()  # one event still unfinished
    bulk.done(1)
    await asyncio.wait_for(joined, timeout=10)
    with pytest.raises(ValueError, match="too many"):
        bulk.done(1)


async def test_put_now_is_put_nowait() -> None:
    # record() queues through put_now: the queue must end as with asyncio's put_nowait (order,
    # size, unfinished count, a waiting getter woken, QueueFull when full).
    fast, plain = _EventQueue(maxsize=2), asyncio.Queue[AuditEvent](maxsize=2)
    events = [make_event(n) for n in range(3)]
    getters = [asyncio.create_task(queue.get()) for queue in (fast, plain)]
    await asyncio.sleep(0)
    assert fast.put_now(events[0]) == 1
    plain.put_nowait(events[0])
    await asyncio.sleep(0)
    assert [getter.result() for getter in getters] == [events[0], events[0]]
    assert fast.put_now(events[1]) == 1
    plain.put_nowait(events[1])
    assert fast.put_now(events[2]) == 2
    plain.put_nowait(events[2])
    with pytest.raises(asyncio.QueueFull):
        fast.put_now(events[0])
    with pytest.raises(asyncio.QueueFull):
        plain.put_nowait(events[0])
    assert fast.qsize() == plain.qsize() == 2
    assert [fast.get_nowait() for _ in range(2)] == [plain.get_nowait() for _ in range(2)]
    joined = [asyncio.create_task(queue.join()) for queue in (fast, plain)]
    for queue in (fast, plain):
        for _ in range(2):
            queue.task_done()
    await asyncio.sleep(0)
    assert not any(join.done() for join in joined)  # the first event is still unfinished
    for queue in (fast, plain):
        queue.task_done()
    await asyncio.wait_for(asyncio.gather(*joined), timeout=10)


class SlicedSink:
    """Writes a batch in its slices with the loop running between two, as the real sinks do."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.slices: list[int] = []

    async def write(self, events: Sequence[AuditEvent]) -> None:
        assert type(events) is Batch
        size = events.slice_size
        for start in range(0, len(events), size):
            if start:
                await asyncio.sleep(0)
            self.slices.append(len(events[start : start + size]))
        self.events.extend(events)


async def _record_from_connections(
    recorder: QueueAuditRecorder, connections: int, requests: int
) -> list[int]:
    """Each connection records one event per loop iteration, as a saturated worker's requests
    do; returns the queue depths seen."""
    depths: list[int] = []

    async def connection() -> None:
        for n in range(requests):
            recorder.record(make_event(n))
            depths.append(recorder.queue_depth)
            await asyncio.sleep(0)

    await asyncio.gather(*(connection() for _ in range(connections)))
    return depths


async def test_a_writer_that_falls_behind_writes_larger_slices_and_keeps_up() -> None:
    # The loop gives the writer one turn per iteration; 48 connections record 48 events per
    # iteration. In slices of WRITE_SLICE a batch of 200 takes 13 turns (624 new events): the
    # queue would grow until it drops events (deepest queue 9,264 with fixed slices). The
    # slices grow with the backlog instead (deepest 480). At 32 connections a writer that
    # runs its only sink in its own task keeps up without a backlog.
    sink = SlicedSink()
    recorder = QueueAuditRecorder([sink], queue_size=100_000, batch_size=200, flush_delay=0)
    await recorder.start()
    depths = await _record_from_connections(recorder, connections=48, requests=300)
    await recorder.aclose()
    assert len(sink.events) == 48 * 300
    assert recorder.dropped_total == 0
    assert max(depths) <= 4 * 200  # bounded: the writer keeps up
    assert max(sink.slices) > WRITE_SLICE


async def test_a_writer_that_keeps_up_writes_small_slices() -> None:
    sink = SlicedSink()
    recorder = QueueAuditRecorder([sink], queue_size=1000, batch_size=200, flush_delay=0)
    await recorder.start()
    await _record_from_connections(recorder, connections=1, requests=100)
    await recorder.aclose()
    assert len(sink.events) == 100
    assert max(sink.slices) <= WRITE_SLICE


class _Meeting:
    """A sink that notes which task writes it, sets ``arrived`` if given, then waits (bounded)
    for ``meet``."""

    def __init__(
        self,
        name: str,
        log: list[tuple[str, object]],
        meet: asyncio.Event,
        arrived: asyncio.Event | None = None,
    ) -> None:
        self.name, self.log, self.meet, self.arrived = name, log, meet, arrived
        self.cancelled = False

    async def write(self, _events: Sequence[AuditEvent]) -> None:
        self.log.append((self.name, asyncio.current_task()))
        if self.arrived is not None:
            self.arrived.set()
        try:
            await asyncio.wait_for(self.meet.wait(), timeout=5)
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def test_the_first_sink_writes_in_the_writers_task_and_the_others_concurrently() -> None:
    # The writer runs the first sink itself (no task, no gathering future) and the others in
    # tasks, concurrently: the first sink waits until the second has started (run one after
    # the other, the first would time out and fail). It starts first, as the first of
    # asyncio.gather's tasks would.
    log: list[tuple[str, object]] = []
    meet = asyncio.Event()
    first, second = _Meeting("first", log, meet), _Meeting("second", log, meet, arrived=meet)
    rec = recorder(first, second, retry_attempts=1)
    await rec.start()
    rec.record(make_event(1))
    await rec.aclose()
    assert [name for name, _ in log] == ["first", "second"]
    assert log[0][1] is rec._task
    assert log[1][1] is not rec._task
    assert (rec.written_total, rec.failed_total) == (1, 0)


async def test_closing_a_writer_stuck_in_a_sink_cancels_the_other_sinks_writes() -> None:
    # As gather cancels its children: when aclose gives up (close timeout) and cancels the
    # writer, a sink still writing in its own task is cancelled too, not left running.
    log: list[tuple[str, object]] = []
    never = asyncio.Event()
    stuck, other = _Meeting("first", log, never), _Meeting("other", log, never)
    rec = recorder(stuck, other, close_timeout=0.2, retry_attempts=1)
    await rec.start()
    rec.record(make_event(1))
    await rec.aclose()
    for _ in range(3):
        await asyncio.sleep(0)
    assert [name for name, _ in log] == ["first", "other"]
    assert (stuck.cancelled, other.cancelled) == (True, True)
    assert rec.dropped_total == 1
