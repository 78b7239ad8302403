"""Sinks: the database trail (SQLite and PostgreSQL) and the ECS log line."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import structlog
from sqlalchemy import delete, insert, select, text
from structlog.testing import capture_logs

from bastion import logging as bastion_logging
from bastion.audit.chain import ChainKeys
from bastion.audit.ecs import to_ecs
from bastion.audit.errors import AuditError, AuditWriteFailed
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import StoredEvent
from bastion.audit.models import audit_chain_head, audit_events
from bastion.audit.recorder import WRITE_SLICE, Batch, QueueAuditRecorder, scrub, with_details
from bastion.audit.sinks import (
    AUDIT_LOGGER,
    DatabaseSink,
    InMemorySink,
    LogSink,
    _append,
    _database,
    _log,
    _rows,
    event_row,
)
from bastion.audit.verify import verify_chain
from bastion.crypto import Keyring
from bastion.storage import Database

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEYS = ChainKeys.from_keyring(Keyring(b"k" * 32))


def event(n: int, **fields: object) -> AuditEvent:
    values: dict[str, object] = {
        "type": EventType.HTTP_REQUEST_REJECTED,
        "outcome": Outcome.FAILURE,
        "time": T0 + timedelta(seconds=n),
        "request_id": f"req-{n}",
    }
    values.update(fields)
    return AuditEvent(**values)  # type: ignore[arg-type]


async def rows(database: Database) -> list[dict[str, object]]:
    async with database.session() as session:
        result = await session.execute(select(audit_events).order_by(audit_events.c.id))
        return [dict(row) for row in result.mappings()]


async def test_database_sink_writes_every_field(database: Database) -> None:
    full = event(
        1,
        actor="42",
        subject="user:7",
        client_ip="2001:db8::1",
        user_agent="curl/8.0",
        reason="body_too_large",
        details={"limit": 1024, "nested": {"ok": [1, 2]}, "text": 'l\'été "quoted" ; DROP'},
    )
    await DatabaseSink(database, KEYS).write([full, event(2)])
    written = await rows(database)
    assert len(written) == 2
    first = written[0]
    assert first["time"] == full.time
    assert first["type"] == "http:request:rejected"
    assert first["outcome"] == "failure"
    assert (first["actor"], first["subject"], first["client_ip"]) == ("42", "user:7", "2001:db8::1")
    assert (first["user_agent"], first["request_id"]) == ("curl/8.0", "req-1")
    assert first["reason"] == "body_too_large"
    assert first["details"] == dict(full.details)
    assert written[1]["details"] == {}
    assert isinstance(first["id"], int)
    assert written[1]["id"] > first["id"]  # type: ignore[operator]


async def test_database_sink_cuts_values_to_the_columns(database: Database) -> None:
    await DatabaseSink(database, KEYS).write([event(1, reason="r" * 1000, user_agent="u" * 1000)])
    [row] = await rows(database)
    assert row["reason"] == "r" * 255
    assert row["user_agent"] == "u" * 512


async def test_a_poisoned_event_cannot_sink_its_batch(database: Database) -> None:
    # Attack: NUL characters and lone surrogates (json.loads accepts "\\ud800") are refused by
    # PostgreSQL and by every driver's encoder; unhandled, one such value from a request body
    # would fail its batch on every retry and erase the honest events around it.
    poisoned = event(
        2,
        subject="user:\udc80\x00",
        user_agent="agent\x00",
        details={"name": "mallory\x00\ud800", "key\x00": ["\udfff"]},
    )
    await DatabaseSink(database, KEYS).write([event(1), poisoned, event(3)])
    written = await rows(database)
    assert [r["request_id"] for r in written] == ["req-1", "req-2", "req-3"]
    assert written[1]["subject"] == "user:?\ufffd"
    assert written[1]["details"] == {"name": "mallory\ufffd?", "key\ufffd": ["?"]}


async def test_database_sink_writes_large_batches(database: Database) -> None:
    await DatabaseSink(database, KEYS).write([event(n) for n in range(500)])
    assert len(await rows(database)) == 500


async def test_database_sink_failure_is_an_audit_error() -> None:
    broken = Database("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(AuditWriteFailed) as caught:
        await DatabaseSink(broken, KEYS).write([event(1)])
    await broken.dispose()
    assert isinstance(caught.value, AuditError)
    assert caught.value.code == "audit_write_failed"


async def test_recorder_into_database_end_to_end(database: Database) -> None:
    recorder = QueueAuditRecorder([DatabaseSink(database, KEYS)], queue_size=100, batch_size=7)
    await recorder.start()
    for n in range(30):
        recorder.record(event(n, details={"password": "hunter2", "n": n}))
    await recorder.aclose()
    written = await rows(database)
    assert [r["request_id"] for r in written] == [f"req-{n}" for n in range(30)]
    assert all(r["details"]["password"] == "[redacted]" for r in written)  # type: ignore[index]
    assert "hunter2" not in repr(written)


async def test_log_sink_writes_ecs_fields() -> None:
    with capture_logs() as logs:
        await LogSink().write([event(1, actor="42"), event(2)])
    assert len(logs) == 2
    assert logs[0]["event"] == "audit_event"
    assert logs[0]["log.logger"] == "bastion.audit"
    assert logs[0]["event.action"] == "http:request:rejected"
    assert logs[0]["user.id"] == "42"
    assert logs[1]["http.request.id"] == "req-2"


async def test_log_sink_line_is_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    structlog.configure(processors=[structlog.processors.JSONRenderer()])
    try:
        await LogSink().write([event(1, details={"k": "line\nbreak"})])
    finally:
        structlog.reset_defaults()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1  # a newline in a value cannot forge a second log line
    document = json.loads(lines[0])
    assert document["bastion.details"] == {"k": "line\nbreak"}
    assert document["event.outcome"] == "failure"


async def test_in_memory_sink_keeps_events() -> None:
    sink = InMemorySink()
    await sink.write([event(1)])
    await sink.write([])
    assert [e.request_id for e in sink.events] == ["req-1"]


async def test_log_sink_writes_what_structlog_would_and_scrubs() -> None:
    # Under Bastion's JSON logging the lines bypass structlog's chain: they must be the chain's
    # very bytes, and details the recorder did not scrub are scrubbed here.
    out = io.StringIO()
    bastion_logging.configure("info", json=True, stream=out)
    try:
        structlog.contextvars.bind_contextvars(session_token="s3cr3t")
        events = [
            event(1, actor="42", details={"password": "hunter2", "n": [1, 2.0]}),
            event(2, subject="user:7", user_agent="ünï\n"),
        ]
        await LogSink().write(events)
        direct = out.getvalue()
        out.seek(0)
        out.truncate()
        log = structlog.get_logger(AUDIT_LOGGER)
        for item in events:
            fields = to_ecs(with_details(item, scrub(item.details)))
            log.info("audit_event", **{"log.logger": AUDIT_LOGGER, **fields})
        assert direct == out.getvalue()
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
    assert len(direct.splitlines()) == 2
    assert "hunter2" not in direct
    assert "s3cr3t" not in direct
    assert json.loads(direct.splitlines()[0])["bastion.details"]["password"] == "[redacted]"


_STORED = (
    "SELECT time, type, outcome, actor, subject, client_ip, user_agent, request_id, reason, "
    "details, seq, mac, key_id FROM audit_events WHERE seq BETWEEN :low AND :high ORDER BY seq"
)


async def test_database_sink_stores_what_sqlalchemy_core_stores(database: Database) -> None:
    # The sink hands the driver ready parameter tuples; the stored values (SQLite keeps the
    # time and the JSON as text) must be what SQLAlchemy's per-row processing stored before,
    # so existing trails, queries and range comparisons are unchanged.
    events = [
        event(
            1, actor="42", subject="user:7", client_ip="2001:db8::1", details={"b": 1, "a": [2.0]}
        ),
        event(2, user_agent="é" * 600, reason="x\x00y", details={"password": "p", "n": None}),
        event(3, time=datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5)))),
    ]
    await DatabaseSink(database, KEYS).write(events)
    assert (await verify_chain(database, KEYS)).intact
    async with database.engine.begin() as connection:
        written = (await connection.execute(text(_STORED), {"low": 1, "high": 3})).all()
        core_rows = [
            {**event_row(e), "seq": 100 + n, "mac": row.mac, "key_id": row.key_id}
            for n, (e, row) in enumerate(zip(events, written, strict=True))
        ]
        await connection.execute(insert(audit_events), core_rows)
        by_core = (await connection.execute(text(_STORED), {"low": 100, "high": 102})).all()
        raw = await connection.exec_driver_sql(
            "SELECT CAST(time AS TEXT), CAST(details AS TEXT) FROM audit_events ORDER BY seq"
        )
        texts = raw.all()
    assert [tuple(r)[:10] for r in written] == [tuple(r)[:10] for r in by_core]
    assert texts[:3] == texts[3:]  # byte for byte, as the database holds them


async def test_database_sink_stores_old_and_shifted_times_as_sqlalchemy_does(
    database: Database,
) -> None:
    # SQLite's time text is made from the canonical stamp; years before 1000 (and an offset
    # that crosses into one) take SQLAlchemy's processor, as does every PostgreSQL time.
    times = [
        datetime(999, 12, 31, 23, 0, tzinfo=UTC),
        datetime(1000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
        datetime(2026, 6, 1, 0, 0, 0, 5, tzinfo=timezone(timedelta(hours=-3))),
    ]
    events = [event(n, time=time) for n, time in enumerate(times, 1)]
    await DatabaseSink(database, KEYS).write(events)
    assert (await verify_chain(database, KEYS)).intact
    async with database.engine.begin() as connection:
        core_rows = [{**event_row(e), "seq": 100 + n} for n, e in enumerate(events)]
        await connection.execute(insert(audit_events), core_rows)
        raw = await connection.exec_driver_sql(
            "SELECT CAST(time AS TEXT) FROM audit_events ORDER BY seq"
        )
        texts = raw.all()
    assert texts[:3] == texts[3:]
    assert [r["time"] for r in (await rows(database))[:3]] == times


async def test_database_sink_refuses_a_naive_time(database: Database) -> None:
    with pytest.raises(AuditWriteFailed):
        await DatabaseSink(database, KEYS).write([event(1, time=datetime(2026, 1, 1))])  # noqa: DTZ001
    assert await rows(database) == []


def _shared_events() -> list[AuditEvent]:
    # Scrubbed details (as the recorder queues them) and raw ones (its overflow event); times
    # with and without a fraction, another offset, a year before 1000.
    return [
        event(1, actor="42", subject="user:7", details=scrub({"b": 1, "a": [2.0, "é"]})),
        event(2, time=datetime(2026, 1, 1, 12, 0, tzinfo=UTC), details=scrub({})),
        event(3, time=datetime(2026, 1, 1, 1, 0, 0, 7, tzinfo=timezone(timedelta(hours=5)))),
        event(4, details={"dropped": 3, "password": "p"}),
        event(5, time=datetime(999, 12, 31, 23, 0, 0, 1, tzinfo=UTC), details=scrub({"x": 1})),
    ]


async def _lines(events: list[AuditEvent]) -> str:
    out = io.StringIO()
    bastion_logging.configure("info", json=True, stream=out)
    try:
        await LogSink().write(events)
    finally:
        structlog.reset_defaults()
    return out.getvalue()


@pytest.mark.parametrize("log_first", [False, True], ids=["database-first", "log-first"])
async def test_a_recorder_batch_stores_and_logs_the_same_bytes(
    database: Database, log_first: bool
) -> None:
    # The recorder hands both sinks one Batch: the UTC stamp and the details' JSON text one
    # sink made are reused by the other, whichever writes first. Rows, MACs and lines must be
    # those of sinks writing plain lists.
    events = _shared_events()
    plain_lines = await _lines(events)
    await DatabaseSink(database, KEYS).write(events)
    batch = Batch(events)
    if log_first:
        assert await _lines(batch) == plain_lines
        await DatabaseSink(database, KEYS).write(batch)
    else:
        await DatabaseSink(database, KEYS).write(batch)
        assert await _lines(batch) == plain_lines
    assert None not in batch.stamps
    assert batch.details_json[0] == json.dumps(events[0].details)
    assert (await verify_chain(database, KEYS)).intact
    async with database.engine.begin() as connection:
        raw = await connection.exec_driver_sql(
            "SELECT CAST(time AS TEXT), type, outcome, actor, subject, client_ip, user_agent, "
            "request_id, reason, CAST(details AS TEXT) FROM audit_events ORDER BY seq"
        )
        stored = raw.all()
    assert stored[:5] == stored[5:]  # byte for byte, as the database holds them


async def test_the_log_sink_writes_a_batch_s_shared_texts() -> None:
    # What another sink already formatted is not formatted again (it is written as given).
    events = [event(1, details=scrub({"a": 1}))]
    batch = Batch(events)
    batch.details_json[0] = '{"a": 1, "shared": true}'
    lines = await _lines(batch)
    assert json.loads(lines)["bastion.details"] == {"a": 1, "shared": True}


def test_texts_skip_only_the_enums_own_values() -> None:
    # _texts checks the type and outcome once, at import, when they are the enums' members;
    # every member must then give what the per-column check gives, and any other value (a
    # plain or foreign text) is still checked, as are the other columns.
    assert _rows._PLAIN_ENUMS

    def general(e: AuditEvent) -> tuple[str | None, ...]:
        values = [getattr(e, name) for name in _rows._TEXTS]
        values[:2] = [values[0]._value_, values[1]._value_]
        return tuple(_rows._fit(n, v) for n, v in zip(_rows._TEXTS, values, strict=True))

    class Foreign(str):
        _value_ = "x" * 100 + "\x00"

    cases = [event(1, type=kind) for kind in EventType]
    cases += [event(2, outcome=outcome) for outcome in Outcome]
    cases.append(event(3, actor="a" * 300, subject="user:\udc80", client_ip="1" * 70))
    cases.append(event(4, type=Foreign("x"), reason="r\x00"))  # type: ignore[arg-type]
    for case in cases:
        assert _rows._texts(case) == general(case)
    assert _rows._texts(cases[-1])[0] == "x" * 64


class _Seen:
    def __init__(self, types: frozenset[EventType] | None = None) -> None:
        if types is not None:
            self.event_types = types
        self.batches: list[list[tuple[int, EventType]]] = []

    def on_stored(self, events: Sequence[StoredEvent]) -> None:
        self.batches.append([(stored.seq, stored.event.type) for stored in events])


async def test_subscribers_with_event_types_get_at_least_their_types(database: Database) -> None:
    # The sink builds StoredEvents only for the types some subscriber declared; a subscriber
    # without a declaration gets every event (and so does every other one then).
    kinds = [EventType.HTTP_REQUEST_REJECTED, EventType.AUTHZ_CHECK_DENIED]
    kinds += [EventType.IDENTITY_PROFILE_UPDATED, EventType.AUTHZ_CHECK_DENIED]
    batch = [event(n, type=kind) for n, kind in enumerate(kinds, 1)]
    sink = DatabaseSink(database, KEYS)
    denials = _Seen(frozenset({EventType.AUTHZ_CHECK_DENIED}))
    rejections = _Seen(frozenset({EventType.HTTP_REQUEST_REJECTED}))
    sink.subscribe(denials)
    sink.subscribe(rejections)
    await sink.write(batch)
    await sink.write([event(9, type=EventType.IDENTITY_PROFILE_UPDATED)])  # nobody's: no call
    expected = [[(1, kinds[0]), (2, kinds[1]), (4, kinds[3])]]
    assert denials.batches == rejections.batches == expected
    everything = _Seen()
    sink.subscribe(everything)
    await sink.write(batch)
    expected = [[(n, kind) for n, kind in enumerate(kinds, 6)]]
    assert everything.batches == expected
    assert denials.batches[1:] == expected


def test_the_metrics_declare_what_they_count() -> None:
    # The metrics declare event_types: exactly the types they count (the sink may leave the
    # others out; the detectors' engine: tests/unit/monitoring/test_engine_routing.py).
    from bastion.monitoring.metrics import SecurityMetrics  # noqa: PLC0415

    metrics = SecurityMetrics()
    for kind in EventType:
        before = list(metrics.collect())
        stored = StoredEvent(1, event(1, type=kind, reason="wrong_password"))
        metrics.on_stored([stored])
        changed = [m.samples for m in metrics.collect()] != [m.samples for m in before]
        assert changed == (kind in metrics.event_types), kind


async def test_a_large_batch_is_written_in_slices_with_the_loop_running_between(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch must never hold the event loop for long (issue 7): between two iterations of the
    # loop, the database sink prepares at most WRITE_SLICE links, chains and inserts at most
    # WRITE_SLICE rows on PostgreSQL (inside the batch's one transaction, the loop running
    # during each statement's round trip), hands at most WRITE_SLICE events to its
    # subscribers, and the log sink writes at most WRITE_SLICE lines. On SQLite the transaction
    # is one step (see sinks._append._append: no yield while holding the write gate).
    progress = {"prepared": 0, "chained": 0, "handed": 0}
    real_link, real_macs = _database._link, _append.link_macs

    def counted_link(*args: Any) -> Any:
        progress["prepared"] += 1
        return real_link(*args)

    def counted_macs(key: Any, seq: int, mac: str, tails: Sequence[str]) -> list[str]:
        progress["chained"] += len(tails)
        return real_macs(key, seq, mac, tails)

    monkeypatch.setattr(_database, "_link", counted_link)
    monkeypatch.setattr(_append, "link_macs", counted_macs)

    class Counting:
        def on_stored(self, events: Sequence[StoredEvent]) -> None:
            progress["handed"] += len(events)

    database_sink = DatabaseSink(database, KEYS)
    database_sink.subscribe(Counting())
    out = io.StringIO()
    bastion_logging.configure("info", json=True, stream=out)
    loop = asyncio.get_running_loop()
    seen: list[dict[str, int]] = []
    running = True

    def probe() -> None:  # runs once in every iteration of the loop
        seen.append({**progress, "logged": out.getvalue().count("\n")})
        if running:
            loop.call_soon(probe)

    loop.call_soon(probe)
    batch = Batch([event(n) for n in range(10 * WRITE_SLICE + 3)])
    try:
        await asyncio.gather(database_sink.write(batch), LogSink().write(batch))
    finally:
        running = False
        structlog.reset_defaults()
    probe()
    assert seen[-1] == dict.fromkeys(("prepared", "chained", "handed", "logged"), len(batch))
    for name in seen[-1]:
        steps = [after[name] - before[name] for before, after in itertools.pairwise(seen)]
        if name == "chained" and database.is_sqlite:
            assert max(steps) == len(batch), steps  # the transaction: one step
            continue
        assert max(steps) <= WRITE_SLICE, name
    assert (await verify_chain(database, KEYS)).intact
    assert [r["seq"] for r in await rows(database)] == list(range(1, len(batch) + 1))


async def test_concurrent_sinks_on_one_file_still_build_one_chain(database: Database) -> None:
    # Two large batches written at once by two sinks of one process: the second waits for the
    # first's transaction (SQLite's write gate, PostgreSQL's head row lock, held while the loop
    # runs during the first's round trips), so the chain is still gap-free and verifies.
    first, second = DatabaseSink(database, KEYS), DatabaseSink(database, KEYS)
    await asyncio.gather(
        first.write([event(n) for n in range(5 * WRITE_SLICE)]),
        second.write([event(n, request_id=f"other-{n}") for n in range(5 * WRITE_SLICE)]),
    )
    stored = await rows(database)
    assert [r["seq"] for r in stored] == list(range(1, 10 * WRITE_SLICE + 1))
    assert (await verify_chain(database, KEYS)).intact
    ids = [str(r["request_id"]) for r in stored]
    # Each batch is one transaction: its rows are contiguous in the chain.
    assert ids[: 5 * WRITE_SLICE] in (
        [f"req-{n}" for n in range(5 * WRITE_SLICE)],
        [f"other-{n}" for n in range(5 * WRITE_SLICE)],
    )


async def test_a_refused_insert_is_an_audit_error_and_leaves_the_chain_as_it_was(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rows go through the driver's own cursor: its errors must still fail the batch as
    # AuditWriteFailed (the recorder retries it) and roll the whole transaction back.
    sink = DatabaseSink(database, KEYS)
    await sink.write([event(0)])
    insert_ = _rows._insert_for(database.engine.dialect)
    monkeypatch.setattr(insert_, "sql", insert_.sql.replace("audit_events", "no_such_table"))
    with pytest.raises(AuditWriteFailed):
        await sink.write([event(n) for n in range(1, 2 * WRITE_SLICE + 2)])
    monkeypatch.undo()
    await sink.write([event(99)])
    assert [r["request_id"] for r in await rows(database)] == ["req-0", "req-99"]
    assert (await verify_chain(database, KEYS)).intact


async def test_the_log_sink_formats_nothing_when_info_lines_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    formatted: list[AuditEvent] = []
    real = _log._ecs_members

    def spy(event: AuditEvent, batch: Batch | None, n: int) -> str:
        formatted.append(event)
        return real(event, batch, n)

    monkeypatch.setattr(_log, "_ecs_members", spy)
    out = io.StringIO()
    bastion_logging.configure("warning", json=True, stream=out)
    try:
        await LogSink().write(Batch([event(n) for n in range(3)]))
        assert out.getvalue() == ""
        assert formatted == []
        bastion_logging.configure("info", json=True, stream=out)
        await LogSink().write(Batch([event(n) for n in range(3)]))
    finally:
        structlog.reset_defaults()
    assert out.getvalue().count("\n") == 3
    assert len(formatted) == 3


async def test_a_small_batch_on_inline_sqlite_is_one_unit_without_a_sqlalchemy_transaction(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of at most UNIT_ROWS events goes through Database.try_unit on an inline SQLite
    # file (its statements and commit in one synchronous call: no greenlet, no SQLAlchemy
    # transaction); a larger one, and every batch on PostgreSQL, through Database.transaction.
    # Either way the rows, their order and the chain are the same.
    sink = DatabaseSink(database, KEYS)
    await sink.write([event(0)])  # the kept connection made
    transactions: list[object] = []
    real = database.transaction

    async def counted(work: Any) -> Any:
        transactions.append(work)
        return await real(work)

    monkeypatch.setattr(database, "transaction", counted)
    small = Batch([event(n) for n in range(1, _append.UNIT_ROWS + 1)])
    await sink.write(small)
    through_small = len(transactions)
    large = Batch([event(n) for n in range(100, 100 + _append.UNIT_ROWS + 1)])
    await sink.write(large)
    inline = database.engine.url.get_driver_name() == "inline"
    assert (through_small, len(transactions)) == ((0, 1) if inline else (1, 2))
    stored = await rows(database)
    assert [r["seq"] for r in stored] == list(range(1, len(small) + len(large) + 2))
    expected = ["req-0", *(f"req-{n}" for n in range(1, _append.UNIT_ROWS + 1))]
    expected += [f"req-{n}" for n in range(100, 100 + _append.UNIT_ROWS + 1)]
    assert [r["request_id"] for r in stored] == expected
    assert (await verify_chain(database, KEYS)).intact


async def test_a_batch_the_unit_cannot_take_goes_the_ordinary_way(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # try_unit gives None (nothing written) when the kept connection or the write gate is
    # busy, or on a database error: the batch then runs through Database.transaction from the
    # start, once. A refused insert is still AuditWriteFailed with nothing written.
    sink = DatabaseSink(database, KEYS)
    await sink.write([event(0)])
    monkeypatch.setattr(database, "try_unit", lambda _work: None)
    await sink.write([event(1), event(2)])
    monkeypatch.undo()
    insert_ = _rows._insert_for(database.engine.dialect)
    monkeypatch.setattr(insert_, "sql", insert_.sql.replace("audit_events", "no_such_table"))
    with pytest.raises(AuditWriteFailed):
        await sink.write([event(3)])  # refused in the unit (rolled back), then in the transaction
    monkeypatch.undo()
    await sink.write([event(4)])
    assert [r["request_id"] for r in await rows(database)] == ["req-0", "req-1", "req-2", "req-4"]
    assert (await verify_chain(database, KEYS)).intact


async def test_a_missing_head_is_left_to_the_ordinary_path(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The unit writes nothing when the head row is missing (None): the ordinary path then
    # creates the head of an empty chain, as before.
    async with database.engine.begin() as connection:
        await connection.execute(delete(audit_chain_head))
    units: list[int | None] = []
    real = database.try_unit

    def spied(work: Any) -> Any:
        result = real(work)
        units.append(result)
        return result

    monkeypatch.setattr(database, "try_unit", spied)
    await DatabaseSink(database, KEYS).write([event(1)])
    await DatabaseSink(database, KEYS).write([event(2)])
    inline = database.engine.url.get_driver_name() == "inline"
    assert units == ([None, 2] if inline else [None, None])
    assert [r["seq"] for r in await rows(database)] == [1, 2]
    assert (await verify_chain(database, KEYS)).intact
