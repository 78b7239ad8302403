"""AuditLog on SQLite and PostgreSQL: signed checkpoints, retention that keeps the chain
verifiable, the periodic job, and search with tamper-proof cursors."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from bastion.audit.chain import checkpoint_tag, event_mac
from bastion.audit.errors import CheckpointInvalid, InvalidCursor
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.models import audit_chain_head, audit_checkpoints, audit_events
from bastion.audit.query import EventFilter
from bastion.audit.services import AuditLog
from bastion.audit.sinks import DatabaseSink
from bastion.audit.verify import Checkpoint, ProblemKind
from bastion.clock import FrozenClock
from bastion.identity.tokens.keys import SigningKey
from bastion.storage import Database

from .chain_helpers import KEYS, T0, write_chain

COUNT = 30
e = audit_events.c


class ListRecorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


def make_log(database: Database, clock: FrozenClock, key: SigningKey, **overrides: Any) -> AuditLog:
    async def signing_key() -> SigningKey:
        return key

    values: dict[str, Any] = {
        "signing_key": signing_key,
        "issuer": "https://id.example.test",
        "recorder": ListRecorder(),
        "clock": clock,
        "retention": timedelta(days=365),
        "checkpoint_interval": timedelta(hours=1),
        "cursor_key": b"c" * 32,
    }
    values.update(overrides)
    return AuditLog(database, KEYS, DatabaseSink(database, KEYS), **values)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0 + timedelta(days=1))


@pytest.fixture
def signing_key(clock: FrozenClock) -> SigningKey:
    return SigningKey.generate(clock=clock, lifetime=timedelta(days=30))


@pytest.fixture
async def log(database: Database, clock: FrozenClock, signing_key: SigningKey) -> AuditLog:
    await write_chain(database, COUNT)
    return make_log(database, clock, signing_key)


def jwks_of(key: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk()]}


async def run(database: Database, *statements: Any) -> None:
    async with database.engine.begin() as connection:
        for statement in statements:
            await connection.execute(statement)


# -- checkpoints -----------------------------------------------------------------------------
async def test_a_checkpoint_signs_the_head_and_an_outsider_can_check_it(
    log: AuditLog, signing_key: SigningKey
) -> None:
    checkpoint = await log.create_checkpoint()
    assert checkpoint is not None
    assert checkpoint.seq == COUNT
    data = json.dumps(checkpoint.export()).encode()
    claims = await log.trusted_checkpoint(data, jwks_of(signing_key))
    assert (claims.seq, claims.mac) == (COUNT, checkpoint.mac)
    report = await log.verify(Checkpoint(claims.seq, claims.mac))
    assert report.intact
    assert report.checkpoint == Checkpoint(COUNT, checkpoint.mac)


async def test_a_stored_checkpoint_is_trusted_without_a_jwks(log: AuditLog) -> None:
    checkpoint = await log.create_checkpoint()
    assert checkpoint is not None
    claims = await log.trusted_checkpoint(json.dumps(checkpoint.export()).encode(), None)
    assert claims.seq == COUNT


async def test_a_checkpoint_signed_by_another_key_is_refused(
    log: AuditLog, clock: FrozenClock, signing_key: SigningKey
) -> None:
    impostor = SigningKey.generate(clock=clock, lifetime=timedelta(days=1))
    forged = await make_log(log.database, clock, impostor).create_checkpoint()
    assert forged is not None
    data = json.dumps(forged.export()).encode()
    with pytest.raises(CheckpointInvalid):
        await log.trusted_checkpoint(data, jwks_of(signing_key))
    # The forger's own key in the file does not help: it is not in the verifier's JWK Set.
    document = forged.export()
    document["jwks"] = jwks_of(impostor)
    with pytest.raises(CheckpointInvalid):
        await log.trusted_checkpoint(json.dumps(document).encode(), jwks_of(signing_key))


@pytest.mark.parametrize("part", [0, 1, 2])
async def test_an_altered_checkpoint_is_refused(
    log: AuditLog, signing_key: SigningKey, part: int
) -> None:
    checkpoint = await log.create_checkpoint()
    assert checkpoint is not None
    segments = checkpoint.token.split(".")
    segments[part] = segments[part][:-4] + ("AAAA" if segments[part][-4:] != "AAAA" else "BBBB")
    document = checkpoint.export()
    document["checkpoint"] = ".".join(segments)
    with pytest.raises(CheckpointInvalid):
        await log.trusted_checkpoint(json.dumps(document).encode(), jwks_of(signing_key))


@pytest.mark.parametrize(
    "data",
    [b"", b"{}", b"[]", b'{"format": "other"}', b"x" * 70_000, b'{"format": 1, "format": 2}'],
)
async def test_garbage_checkpoint_files_are_refused(
    log: AuditLog, signing_key: SigningKey, data: bytes
) -> None:
    with pytest.raises(CheckpointInvalid):
        await log.trusted_checkpoint(data, jwks_of(signing_key))


async def test_a_checkpoint_of_another_issuer_is_refused(
    log: AuditLog, clock: FrozenClock, signing_key: SigningKey
) -> None:
    other = make_log(log.database, clock, signing_key, issuer="https://elsewhere.test")
    checkpoint = await other.create_checkpoint()
    assert checkpoint is not None
    with pytest.raises(CheckpointInvalid):
        await log.trusted_checkpoint(json.dumps(checkpoint.export()).encode(), jwks_of(signing_key))


async def test_an_insider_who_rewrites_history_with_the_key_is_caught_by_a_checkpoint(
    log: AuditLog, signing_key: SigningKey
) -> None:
    checkpoint = await log.create_checkpoint()
    assert checkpoint is not None
    # The insider holds the chain key: edits event 5 and recomputes every later MAC.
    async with log.database.engine.begin() as connection:
        await connection.execute(update(audit_events).where(e.seq == 5).values(reason="benign"))
        rows = (
            (await connection.execute(select(audit_events).where(e.seq >= 4).order_by(e.seq)))
            .mappings()
            .all()
        )
        prev = rows[0]["mac"]
        for row in rows[1:]:
            prev = event_mac(KEYS.current, row["seq"], row, prev)
            await connection.execute(
                update(audit_events).where(e.seq == row["seq"]).values(mac=prev)
            )
        await connection.execute(update(audit_chain_head).values(mac=prev))
    assert (await log.verify()).intact  # the chain alone cannot tell
    claims = await log.trusted_checkpoint(
        json.dumps(checkpoint.export()).encode(), jwks_of(signing_key)
    )
    report = await log.verify(Checkpoint(claims.seq, claims.mac))
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (ProblemKind.CHECKPOINT_MISMATCH, COUNT)


async def test_an_empty_chain_has_no_checkpoint(
    database: Database, clock: FrozenClock, signing_key: SigningKey
) -> None:
    assert await make_log(database, clock, signing_key).create_checkpoint() is None


# -- retention -------------------------------------------------------------------------------
async def test_purge_keeps_the_chain_verifiable_from_a_signed_anchor(
    log: AuditLog, signing_key: SigningKey
) -> None:
    result = await log.purge(T0 + timedelta(seconds=11))  # events 1..10 are older
    assert result.deleted == 10
    assert result.anchor is not None
    assert result.anchor.seq == 10
    report = await log.verify()
    assert report.intact, report.problem
    assert (report.anchor_seq, report.checked) == (10, COUNT - 10)
    async with log.database.engine.connect() as connection:
        assert await connection.scalar(select(e.seq).order_by(e.seq).limit(1)) == 11
    # The anchor is a checkpoint an outsider can check, and proving it still works.
    data = json.dumps(result.anchor.export()).encode()
    claims = await log.trusted_checkpoint(data, jwks_of(signing_key))
    assert (await log.verify(Checkpoint(claims.seq, claims.mac))).intact
    assert [ev.type for ev in log._recorder.events] == [EventType.AUDIT_EVENTS_PURGED]  # type: ignore[attr-defined]


async def test_purge_twice_and_nothing_to_purge(log: AuditLog) -> None:
    assert (await log.purge(T0)).deleted == 0
    assert (await log.purge(T0 + timedelta(seconds=6))).deleted == 5
    assert (await log.purge(T0 + timedelta(seconds=6))).deleted == 0
    assert (await log.purge(T0 + timedelta(seconds=16))).deleted == 10
    report = await log.verify()
    assert report.intact
    assert report.anchor_seq == 15


async def test_moving_the_anchor_forward_to_hide_history_is_caught(log: AuditLog) -> None:
    await log.purge(T0 + timedelta(seconds=6))
    # Delete more history and re-anchor at event 20 using its (readable) stored MAC.
    async with log.database.engine.begin() as connection:
        mac = await connection.scalar(select(e.mac).where(e.seq == 20))
        await connection.execute(delete(audit_events).where(e.seq <= 20))
        await connection.execute(update(audit_chain_head).values(anchor_seq=20, anchor_mac=mac))
    report = await log.verify()
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (ProblemKind.ANCHOR_INVALID, 20)


async def test_a_forged_anchor_checkpoint_row_is_caught(log: AuditLog) -> None:
    result = await log.purge(T0 + timedelta(seconds=6))
    assert result.anchor is not None
    async with log.database.engine.begin() as connection:
        mac = await connection.scalar(select(e.mac).where(e.seq == 20))
        await connection.execute(delete(audit_events).where(e.seq <= 20))
        await connection.execute(
            audit_checkpoints.insert().values(
                seq=20,
                mac=mac,
                created_at=T0,
                kid="x",
                token="forged",
                public_jwk={},
                tag="0" * 64,  # no chain key: cannot tag
            )
        )
        await connection.execute(update(audit_chain_head).values(anchor_seq=20, anchor_mac=mac))
    report = await log.verify()
    assert report.problem is not None
    assert report.problem.kind is ProblemKind.ANCHOR_INVALID
    assert checkpoint_tag(KEYS.current, 20, str(mac), "forged") != "0" * 64


async def test_purge_refuses_to_delete_tampered_evidence(log: AuditLog) -> None:
    await run(log.database, update(audit_events).where(e.seq == 3).values(reason="erased"))
    result = await log.purge(T0 + timedelta(seconds=11))
    assert result.deleted == 0
    assert result.refused is not None
    assert result.refused.problem is not None
    assert result.refused.problem.seq == 3


async def test_a_checkpoint_in_a_purged_range_is_reported(
    log: AuditLog, signing_key: SigningKey
) -> None:
    async with log.database.engine.connect() as connection:
        mac = await connection.scalar(select(e.mac).where(e.seq == 5))
    await log.purge(T0 + timedelta(seconds=11))
    report = await log.verify(Checkpoint(5, str(mac)))
    assert report.problem is not None
    assert report.problem.kind is ProblemKind.CHECKPOINT_PURGED


# -- the periodic job ------------------------------------------------------------------------
async def test_maintain_checkpoints_when_due_and_purges(
    database: Database, clock: FrozenClock, signing_key: SigningKey
) -> None:
    await write_chain(database, COUNT)
    log = make_log(database, clock, signing_key, retention=timedelta(days=1))
    await log.maintain()
    first = await log.checkpoints(limit=5)
    assert [c.seq for c in first] == [COUNT]
    await log.maintain()  # not due yet
    assert len(await log.checkpoints(limit=5)) == 1
    clock.advance(timedelta(hours=2))
    started = AuditEvent(EventType.SYSTEM_SERVICE_STARTED, Outcome.SUCCESS, clock.now())
    await DatabaseSink(database, KEYS).write([started])


async def test_a_cursor_cannot_be_forged_or_reused_for_another_query(log: AuditLog) -> None:
    query = EventFilter(subject="user:u1")
    _, cursor = await log.search(query, limit=2)
    assert cursor is not None
    other = EventFilter(subject="user:u2")
    with pytest.raises(InvalidCursor):
        await log.search(other, cursor=cursor)
    for forged in ("1", "AAAA", cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB"), "x" * 300):
        with pytest.raises(InvalidCursor):
            await log.search(query, cursor=forged)


async def test_the_periodic_job_runs_in_the_background_until_closed(
    database: Database, clock: FrozenClock, signing_key: SigningKey
) -> None:
    await write_chain(database, 3)
    log = make_log(database, clock, signing_key, checkpoint_interval=timedelta(milliseconds=20))
    await log.start()
    try:
        for _ in range(500):
            if await log.checkpoints(limit=1):
                break
            await asyncio.sleep(0.02)
        found = await log.checkpoints(limit=1)
    finally:
        await log.aclose()
    assert [c.seq for c in found] == [3]
    assert log._task is None


async def test_no_job_when_checkpoints_and_retention_are_off(
    database: Database, clock: FrozenClock, signing_key: SigningKey
) -> None:
    log = make_log(database, clock, signing_key, checkpoint_interval=None, retention=None)
    await log.start()
    assert log._task is None
    await log.aclose()
