"""Tampering with the stored trail directly in SQL (SQLite and PostgreSQL): ``verify`` names the
first bad event and what was done to it. Each attack would go unnoticed without the chain."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from bastion.audit.chain import ChainKeys
from bastion.audit.models import audit_chain_head, audit_events
from bastion.audit.verify import Checkpoint, ProblemKind, verify_chain
from bastion.crypto import Keyring
from bastion.storage import Database

from .chain_helpers import KEYS, T0, head, ids_by_seq, write_chain

COUNT = 20
e = audit_events.c


async def run(database: Database, statement: Any, *more: Any) -> None:
    async with database.engine.begin() as connection:
        for s in (statement, *more):
            await connection.execute(s)


async def problem(database: Database) -> tuple[ProblemKind, int | None] | None:
    report = await verify_chain(database, KEYS, fetch_rows=4)
    if report.problem is None:
        return None
    return report.problem.kind, report.problem.seq


@pytest.fixture
async def chained(database: Database) -> Database:
    await write_chain(database, COUNT)
    return database


async def test_an_untouched_chain_verifies(chained: Database) -> None:
    report = await verify_chain(chained, KEYS, fetch_rows=3)
    assert report.intact, report.problem
    assert (report.checked, report.anchor_seq, report.head_seq) == (COUNT, 0, COUNT)
    assert (await head(chained)).seq == COUNT
    assert sorted(await ids_by_seq(chained)) == list(range(1, COUNT + 1))


async def test_an_empty_chain_verifies(database: Database) -> None:
    report = await verify_chain(database, KEYS)
    assert report.intact
    assert report.checked == 0


@pytest.mark.parametrize(
    "values",
    [
        {"reason": "correct_password"},
        {"outcome": "success"},
        {"actor": "user:attacker"},
        {"client_ip": "198.51.100.1"},
        {"details": {"n": 7}},
        {"time": T0},
        {"mac": "f" * 64},
    ],
    ids=lambda v: next(iter(v)),
)
async def test_an_edited_field_is_named(chained: Database, values: dict[str, Any]) -> None:
    await run(chained, update(audit_events).where(e.seq == 7).values(**values))
    assert await problem(chained) == (ProblemKind.MODIFIED, 7)


async def test_an_edit_with_a_wrong_key_id_is_named(chained: Database) -> None:
    await run(chained, update(audit_events).where(e.seq == 4).values(key_id="00000000"))
    assert await problem(chained) == (ProblemKind.UNKNOWN_KEY, 4)


async def test_a_deleted_event_is_named(chained: Database) -> None:
    await run(chained, delete(audit_events).where(e.seq == 7))
    assert await problem(chained) == (ProblemKind.DELETED, 7)


async def test_deleted_newest_events_are_named(chained: Database) -> None:
    await run(chained, delete(audit_events).where(e.seq >= COUNT - 1))
    assert await problem(chained) == (ProblemKind.DELETED, COUNT - 1)


async def _shift(database: Database, from_seq: int, by: int) -> None:
    # Two steps: PostgreSQL checks the unique index row by row.
    await run(
        database,
        update(audit_events).where(e.seq >= from_seq).values(seq=-(e.seq + by)),
        update(audit_events).where(e.seq < 0).values(seq=-e.seq),
    )


async def test_a_deletion_hidden_by_renumbering_is_named(chained: Database) -> None:
    await run(chained, delete(audit_events).where(e.seq == 7))
    await _shift(chained, 8, -1)
    await run(chained, update(audit_chain_head).values(seq=COUNT - 1))
    assert await problem(chained) == (ProblemKind.DELETED, 7)


def _forged(seq: int | None) -> dict[str, Any]:
    return {
        "time": T0,
        "type": "identity:login:succeeded",
        "outcome": "success",
        "subject": "user:u1",
        "details": {},
        "seq": seq,
        "mac": "a" * 64 if seq else None,
        "key_id": KEYS.current.key_id if seq else None,
    }


async def test_an_inserted_unchained_row_is_named(chained: Database) -> None:
    await run(chained, insert(audit_events).values(**_forged(None)))
    report = await verify_chain(chained, KEYS)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (ProblemKind.INSERTED, None)
    assert report.problem.id == max((await ids_by_seq(chained)).values()) + 1


async def test_an_inserted_row_with_later_rows_renumbered_is_named(chained: Database) -> None:
    await _shift(chained, 7, 1)
    await run(
        chained,
        insert(audit_events).values(**_forged(7)),
        update(audit_chain_head).values(seq=COUNT + 1),
    )
    assert await problem(chained) == (ProblemKind.INSERTED, 7)


async def test_a_row_appended_beyond_the_head_is_named(chained: Database) -> None:
    await run(chained, insert(audit_events).values(**_forged(COUNT + 1)))
    assert await problem(chained) == (ProblemKind.INSERTED, COUNT + 1)


async def _swap(database: Database, a: int, b: int) -> None:
    await run(
        database,
        update(audit_events).where(e.seq == a).values(seq=-1),
        update(audit_events).where(e.seq == b).values(seq=a),
        update(audit_events).where(e.seq == -1).values(seq=b),
    )


@pytest.mark.parametrize(("a", "b"), [(7, 8), (5, 12), (1, COUNT)])
async def test_reordered_rows_are_named(chained: Database, a: int, b: int) -> None:
    await _swap(chained, a, b)
    assert await problem(chained) == (ProblemKind.REORDERED, a)


async def test_swapped_contents_are_named(chained: Database) -> None:
    # Move the content of two rows but keep seq, id and MAC in place.
    async with chained.engine.connect() as connection:
        rows = {
            r.seq: r
            for r in await connection.execute(
                select(e.seq, e.time, e.type, e.outcome, e.subject, e.details).where(
                    e.seq.in_([3, 9])
                )
            )
        }
    fields = ("time", "subject", "details")
    await run(
        chained,
        update(audit_events).where(e.seq == 3).values({f: getattr(rows[9], f) for f in fields}),
        update(audit_events).where(e.seq == 9).values({f: getattr(rows[3], f) for f in fields}),
    )
    assert await problem(chained) == (ProblemKind.MODIFIED, 3)


async def test_a_deleted_head_is_reported(chained: Database) -> None:
    await run(chained, delete(audit_chain_head))
    assert await problem(chained) == (ProblemKind.HEAD_MISSING, None)


async def test_the_first_bad_event_is_named_when_several_are(chained: Database) -> None:
    await run(
        chained,
        update(audit_events).where(e.seq == 15).values(reason="x"),
        delete(audit_events).where(e.seq == 11),
        update(audit_events).where(e.seq == 6).values(reason="y"),
    )
    assert await problem(chained) == (ProblemKind.MODIFIED, 6)


async def test_a_chain_does_not_verify_under_another_secret_key(chained: Database) -> None:
    other = ChainKeys.from_keyring(Keyring(b"another-root-key-of-enough-length"))
    report = await verify_chain(chained, other)
    assert report.problem is not None
    assert report.problem.kind is ProblemKind.UNKNOWN_KEY


async def test_a_rotated_root_key_still_verifies_old_links(chained: Database) -> None:
    rotated = ChainKeys.from_keyring(Keyring(b"the-new-root-key-of-enough-length", [KEYS_ROOT]))
    assert (await verify_chain(chained, rotated)).intact


async def test_a_checkpoint_is_proven_or_refuted(chained: Database) -> None:
    async with chained.engine.connect() as connection:
        mac = await connection.scalar(select(e.mac).where(e.seq == 10))
    assert mac is not None
    good = await verify_chain(chained, KEYS, checkpoint=Checkpoint(10, mac))
    assert good.intact
    assert good.checkpoint == Checkpoint(10, mac)
    wrong = await verify_chain(chained, KEYS, checkpoint=Checkpoint(10, "0" * 64))
    assert wrong.problem is not None
    assert wrong.problem.kind is ProblemKind.CHECKPOINT_MISMATCH
    future = await verify_chain(chained, KEYS, checkpoint=Checkpoint(COUNT + 5, mac))
    assert future.problem is not None
    assert future.problem.kind is ProblemKind.CHECKPOINT_MISMATCH


KEYS_ROOT = b"audit-chain-test-root-key-0123456789"
