"""record_from_scope: an event captured on the request path and built by the writer is the event
``event_from_scope`` makes, taken at ``record`` time, with nothing of the caller's kept."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from bastion.audit import context
from bastion.audit.capture import event_of
from bastion.audit.chain import utc_stamp
from bastion.audit.context import event_from_scope, record_from_scope
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.recorder import Batch, QueueAuditRecorder, ScrubbedDetails
from bastion.audit.sinks import InMemorySink
from bastion.clock import FrozenClock, SystemClock

T0 = datetime(2026, 5, 1, 2, 3, 4, 567891, tzinfo=UTC)


def scope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "client": ("10.0.0.1", 50000),
        "headers": [(b"host", b"example.com"), (b"user-agent", b"Mozilla/5.0")],
        "state": {"client_ip": "203.0.113.7", "request_id": "req-123"},
    }
    base.update(overrides)
    return base


def queue_recorder(**options: Any) -> QueueAuditRecorder:
    options.setdefault("queue_size", 100)
    options.setdefault("batch_size", 10)
    return QueueAuditRecorder([], clock=FrozenClock(), **options)


def written(recorder: QueueAuditRecorder) -> list[AuditEvent]:
    """What the writer would hand the sinks for what is queued now (the queue left as is)."""
    items = list(recorder._queue._queue)
    return recorder._events(items)[0]


def captured(scope_: dict[str, Any], **fields: Any) -> AuditEvent:
    recorder = queue_recorder()
    record_from_scope(
        recorder, scope_, EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, **fields
    )
    assert recorder.dropped_total == 0
    [event] = written(recorder)
    return event


def _same(got: AuditEvent, want: AuditEvent) -> None:
    assert type(got) is AuditEvent
    assert got == want
    assert repr(got) == repr(want)
    assert type(got.details) is ScrubbedDetails
    assert type(got.time) is type(want.time)


class _Thing:
    def __str__(self) -> str:
        return "thing\x00\ud800"


DETAILS: list[Any] = [
    None,
    {},
    {"fields": ["display_name"]},
    {"password": "hunter2", "new_password": ["a"], "Token": {"x": 1}, "ok": "fine"},
    {"n": 1, "f": 2.0, "g": 2.5, "b": True, "none": None},
    {"s": "a" * 2000, "u": "\u00fcn\u00ef\n", "nul": "a\x00b", "sur": "\ud800x"},
    {1: "int key", ("t", 1): "tuple key", "k" * 1500: "long key"},
    {"t": (1, "2"), "set": {3}, "l": [1, [2, [3.0]]], "when": T0, "obj": _Thing()},
    ScrubbedDetails({"ready": "scrubbed"}),
]


@pytest.mark.parametrize("details", DETAILS)
@pytest.mark.parametrize(
    "scope_",
    [
        scope(),
        scope(state={}),
        scope(state={"client_ip": "", "request_id": ""}, client=None, headers=None),
        scope(state={"client_ip": 42, "request_id": 12345}),
        scope(state={"request_id": "r" * 300}, headers=[(b"User-Agent", b"u" * 900)]),
        scope(headers=[(b"host", b"h"), (b"USER-AGENT", b"x"), (b"user-agent", b"y")]),
        scope(headers=[(b"user-agent", bytearray(b"\xe9\xff"))]),
        scope(headers=[(b"user-agent", b"")]),
        {"type": "http"},
    ],
)
def test_the_writers_event_is_event_from_scopes(details: Any, scope_: dict[str, Any]) -> None:
    clock = FrozenClock(T0)
    fields: dict[str, Any] = {
        "actor": "user:1",
        "subject": "user:2\u00e9",
        "reason": "why",
        "details": details,
        "clock": clock,
    }
    want = event_from_scope(scope_, EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, **fields)
    _same(captured(scope_, **fields), want)


@pytest.mark.parametrize(
    "ns",
    [
        1_764_430_000_123_456_789,  # 2025-11-29
        1_764_430_000_999_999_999,  # floored, never rounded up to the next second
        1_764_429_959_000_000_000,  # a whole second
        0,
        -1,  # floored: 1969-12-31T23:59:59.999999
    ],
)
@pytest.mark.parametrize("clock", [None, SystemClock()])
def test_the_system_clock_is_read_as_nanoseconds_and_floored_like_datetime_now(
    monkeypatch: pytest.MonkeyPatch, ns: int, clock: SystemClock | None
) -> None:
    monkeypatch.setattr(context, "time_ns", lambda: ns)
    event = captured(scope(), clock=clock)
    seconds, micro = divmod(ns // 1000, 1_000_000)
    want = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micro)
    assert event.time == want
    assert event.time.tzinfo is UTC
    assert (event.time.fold, event.time.utcoffset()) == (0, timedelta(0))
    assert repr(event.time) == repr(want)


def test_the_system_clock_gives_what_datetime_now_gives() -> None:
    before = datetime.now(UTC)
    event = captured(scope())
    after = datetime.now(UTC)
    assert before <= event.time <= after
    assert event.time.tzinfo is UTC


async def test_the_time_is_that_of_record_not_of_the_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = InMemorySink()
    recorder = QueueAuditRecorder([sink], queue_size=10, batch_size=10, flush_delay=0)
    now = [1_764_430_000_000_000_000]
    monkeypatch.setattr(context, "time_ns", lambda: now[0])
    record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    now[0] += 3_600 * 10**9  # an hour later, the writer runs
    await recorder.start()
    await recorder.aclose()
    [event] = sink.events
    assert event.time == datetime(2025, 11, 29, 15, 26, 40, tzinfo=UTC)


def _reachable(root: object) -> list[object]:
    seen: dict[int, object] = {}
    todo = [root]
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, type):
            continue
        seen[id(item)] = item
        todo.extend(gc.get_referents(item))
    return list(seen.values())


def test_nothing_queued_refers_to_the_callers_mutable_objects() -> None:
    inner: dict[str, Any] = {"k": ["v"]}
    details: dict[str, Any] = {"fields": ["display_name"], "nested": inner, "s": {1}}
    agent = bytearray(b"agent")
    scope_ = scope(headers=[(b"host", b"h"), (b"user-agent", agent)])
    mutable = [details, details["fields"], inner, inner["k"], details["s"], agent, scope_]
    mutable += [scope_["headers"], scope_["state"]]
    recorder = queue_recorder()
    record_from_scope(
        recorder, scope_, EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, details=details
    )
    [item] = recorder._queue._queue
    reachable = _reachable(item)
    assert not [obj for obj in mutable if any(obj is seen for seen in reachable)]
    # And what the caller changes afterwards does not reach the event.
    details["fields"].append("email")
    inner["k"].append("w")
    inner["x"] = 2
    details["password"] = "hunter2"
    agent[:] = b"other"
    scope_["state"]["client_ip"] = "198.51.100.1"
    [event] = written(recorder)
    assert event.details == {"fields": ["display_name"], "nested": {"k": ["v"]}, "s": [1]}
    assert (event.user_agent, event.client_ip) == ("agent", "203.0.113.7")


class ListRecorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class CountingRecorder(QueueAuditRecorder):
    """A subclass may override record(): it still gets every event through it."""

    def __init__(self) -> None:
        super().__init__([], queue_size=10, batch_size=10, clock=FrozenClock())
        self.recorded: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.recorded.append(event)


@pytest.mark.parametrize("factory", [ListRecorder, CountingRecorder])
def test_other_recorders_get_event_from_scopes_event(factory: Any) -> None:
    recorder = factory()
    clock = FrozenClock(T0)
    fields: dict[str, Any] = {"actor": "a", "details": {"fields": ["x"]}, "clock": clock}
    record_from_scope(
        recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, **fields
    )
    want = event_from_scope(scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, **fields)
    events = recorder.events if isinstance(recorder, ListRecorder) else recorder.recorded
    assert events == [want]


async def test_a_full_queue_counts_logs_and_reports_captured_events() -> None:
    sink = InMemorySink()
    recorder = QueueAuditRecorder([sink], queue_size=3, batch_size=10, clock=FrozenClock())
    with capture_logs() as logs:
        for n in range(5):
            record_from_scope(
                recorder,
                scope(state={"request_id": f"r{n}"}),
                EventType.IDENTITY_PROFILE_UPDATED,
                Outcome.SUCCESS,
            )
    assert (recorder.queue_depth, recorder.dropped_total) == (3, 2)
    assert logs[0]["reason"] == "queue_full"
    await recorder.aclose()
    overflow = [e for e in sink.events if e.type is EventType.AUDIT_QUEUE_OVERFLOWED]
    assert [e.details for e in overflow] == [{"dropped": 2, "dropped_total": 2}]
    assert [e.request_id for e in sink.events if e not in overflow] == ["r0", "r1", "r2"]


async def test_after_close_captured_events_are_counted() -> None:
    recorder = queue_recorder()
    await recorder.aclose()
    with capture_logs() as logs:
        record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    assert recorder.dropped_total == 1
    assert logs[0]["reason"] == "recorder_closed"


def test_a_capture_that_fails_is_counted_never_raised() -> None:
    class Hostile(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("boom")

    recorder = queue_recorder()
    with capture_logs() as logs:
        record_from_scope(
            recorder,
            scope(),
            EventType.IDENTITY_PROFILE_UPDATED,
            Outcome.SUCCESS,
            details=Hostile(a=1),
        )
        record_from_scope(  # a header value that is text, not bytes
            recorder,
            scope(headers=[(b"user-agent", "text")]),
            EventType.IDENTITY_PROFILE_UPDATED,
            Outcome.SUCCESS,
        )
    assert (recorder.dropped_total, recorder.queue_depth) == (2, 0)
    assert [log["reason"] for log in logs] == ["invalid_event"]  # one line a second


async def test_a_capture_the_writer_cannot_build_is_counted_and_the_rest_written() -> None:
    sink = InMemorySink()
    recorder = QueueAuditRecorder([sink], queue_size=10, batch_size=10, flush_delay=0)
    record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    recorder.record_captured(("not", "a", "capture"))  # type: ignore[arg-type]
    record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    await recorder.start()
    await recorder.aclose()
    kinds = [event.type for event in sink.events]
    assert kinds.count(EventType.IDENTITY_PROFILE_UPDATED) == 2
    assert recorder.dropped_total == 1
    assert recorder.written_total == len(sink.events)


async def test_record_captured_queues_as_put_nowait() -> None:
    # record_captured inlines _EventQueue.put_now: a waiting writer is woken, join waits for
    # every captured event, the batch fills as with record().
    recorder = queue_recorder(queue_size=4)
    queue = recorder._queue
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    await asyncio.sleep(0)
    first = getter.result()
    assert type(first) is tuple
    record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    assert queue.qsize() == 1
    joined = asyncio.create_task(queue.join())
    await asyncio.sleep(0)
    queue.done(1)
    await asyncio.sleep(0)
    assert not joined.done()  # the second one is still unfinished
    queue.take(1)
    queue.done(1)
    await asyncio.wait_for(joined, timeout=10)
    record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    assert not queue._finished.is_set()


async def test_captured_events_go_through_the_sinks(tmp_path: Any) -> None:
    class Collect:
        def __init__(self) -> None:
            self.batches: list[Sequence[AuditEvent]] = []

        async def write(self, events: Sequence[AuditEvent]) -> None:
            self.batches.append(list(events))

    sink = Collect()
    recorder = QueueAuditRecorder([sink], queue_size=10, batch_size=10, flush_delay=0)
    recorder.record(event_from_scope(scope(), EventType.HTTP_REQUEST_FAILED, Outcome.FAILURE))
    record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    await recorder.start()
    await recorder.aclose()
    [batch] = sink.batches
    assert [type(event) for event in batch] == [AuditEvent, AuditEvent]
    assert [event.type for event in batch] == [
        EventType.HTTP_REQUEST_FAILED,
        EventType.IDENTITY_PROFILE_UPDATED,
    ]


def test_event_of_is_the_constructors_event() -> None:
    item = (
        T0,
        EventType.AUDIT_EVENTS_SEARCHED,
        Outcome.UNKNOWN,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
    assert event_of(item) == AuditEvent(EventType.AUDIT_EVENTS_SEARCHED, Outcome.UNKNOWN, T0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "start", [1_764_430_000_999_999_000, 1_764_430_059_999_000_123, -2_000_001]
)
async def test_the_writers_stamps_are_utc_stamp_of_the_events_time(
    monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    # The writer stamps captured events from their nanoseconds (the second's text remembered,
    # across batches too): the text utc_stamp gives for the event's datetime, every sink sees it.
    stamps: list[list[str | None]] = []

    class Stamps:
        async def write(self, events: Sequence[AuditEvent]) -> None:
            assert isinstance(events, Batch)
            stamps.append(list(events.stamps))

    sink, seen = InMemorySink(), Stamps()
    recorder = QueueAuditRecorder([sink, seen], queue_size=100, batch_size=4, flush_delay=0)
    times = [start + step for step in (0, 1_000, 999_999, 1_000_000, 61_000_000_000, 1)]
    for ns in times:
        monkeypatch.setattr(context, "time_ns", lambda ns=ns: ns)
        record_from_scope(recorder, scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS)
    recorder.record(event_from_scope(scope(), EventType.HTTP_REQUEST_FAILED, Outcome.FAILURE))
    await recorder.start()
    await recorder.aclose()
    flat = [stamp for batch in stamps for stamp in batch]
    assert flat[:-1] == [utc_stamp(event.time) for event in sink.events[:-1]]
    assert flat[-1] is None  # record()'s event: the sinks stamp it
    assert [event.time for event in sink.events[:-1]] == [
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000) for ns in times
    ]
