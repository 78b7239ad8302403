"""``bastion audit verify``: walk the chain and name the first event that does not verify.

The walk streams rows in ``seq`` order (bounded memory whatever the size of the trail) from the
anchor (genesis, or the checkpoint a purge left) to the head read when the walk starts; events
appended meanwhile are left for the next run. Each link is recomputed; the first mismatch stops
the walk and is classified with one row of look-ahead:

- ``deleted``: a gap in ``seq``, a tail missing below the head, or later rows renumbered to hide
  a gap;
- ``inserted``: an unchained row after the chain began, a row beyond the head, or a row whose
  successor verifies in its place (later rows renumbered to make room);
- ``reordered``: rows swapped (the row verifies one place later, or ids run backwards);
- ``modified``: anything else (a changed field, MAC or key id).

The position is exact; the kind is the most likely explanation. Classification never decides
*whether* the chain is intact: any mismatch is a failure.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.chain import ChainKeys, checkpoint_tag, event_mac, macs_equal
from bastion.audit.models import HEAD_ROW_ID, audit_chain_head, audit_checkpoints, audit_events
from bastion.storage import Database

__all__ = ["ChainProblem", "Checkpoint", "ProblemKind", "VerifyReport", "verify_chain"]

#: Rows fetched per round trip: bounds memory, amortizes latency.
FETCH_ROWS = 5000

Row = Mapping[Any, Any]


class ProblemKind(enum.StrEnum):
    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    #: The head row is gone, or the anchor (the checkpoint before a purged range) is not genuine.
    HEAD_MISSING = "head_missing"
    ANCHOR_INVALID = "anchor_invalid"
    #: A row chained under a key id none of the configured root keys has.
    UNKNOWN_KEY = "unknown_key"
    #: The checkpoint being proven does not match the log (or lies in a purged range).
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"
    CHECKPOINT_PURGED = "checkpoint_purged"


@dataclass(frozen=True, slots=True)
class ChainProblem:
    kind: ProblemKind
    #: Chain position of the first bad event (None for an unchained row or a head problem).
    seq: int | None
    #: Database id of the offending row, when there is one.
    id: int | None = None

    def describe(self) -> str:
        where = f"seq {self.seq}" if self.seq is not None else "no chain position"
        row = f", row id {self.id}" if self.id is not None else ""
        return f"{self.kind.value} at {where}{row}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A chain position and the MAC the event there must have (from a verified checkpoint)."""

    seq: int
    mac: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    problem: ChainProblem | None
    #: The chain was walked from ``anchor_seq + 1`` to ``head_seq``.
    anchor_seq: int
    head_seq: int
    checked: int
    #: Rows from before the chain existed: present, but not protected by it.
    legacy_rows: int
    #: The checkpoint this run proved, if one was given.
    checkpoint: Checkpoint | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


@dataclass
class _Walk:
    keys: ChainKeys
    expected: int
    prev_mac: str
    prev_id: int | None = None
    checked: int = 0
    checkpoint: Checkpoint | None = None
    checkpoint_seen: bool = False


async def verify_chain(
    database: Database,
    keys: ChainKeys,
    *,
    checkpoint: Checkpoint | None = None,
    fetch_rows: int = FETCH_ROWS,
) -> VerifyReport:
    """Walk the whole chain (and prove ``checkpoint`` against it when given)."""
    async with database.engine.connect() as connection:
        head = (
            await connection.execute(
                select(audit_chain_head).where(audit_chain_head.c.id == HEAD_ROW_ID)
            )
        ).first()
        if head is None:
            chained = await _count(connection, audit_events.c.seq.is_not(None))
            problem = ChainProblem(ProblemKind.HEAD_MISSING, None) if chained else None
            return VerifyReport(problem, 0, 0, 0, await _count(connection, None))
        legacy = await _count(
            connection, audit_events.c.seq.is_(None), audit_events.c.id <= head.legacy_max_id
        )
        walk = _Walk(keys, head.anchor_seq + 1, head.anchor_mac, checkpoint=checkpoint)
        problem = await _anchor_problem(connection, keys, head.anchor_seq, head.anchor_mac)
        if problem is None:
            problem = _checkpoint_before_anchor(checkpoint, head.anchor_seq, head.anchor_mac)
        if problem is None:
            problem = await _walk(connection, walk, head.seq, fetch_rows)
        if problem is None:
            problem = await _extra_rows(connection, head)
        if (
            problem is None
            and checkpoint is not None
            and checkpoint.seq > head.anchor_seq
            and not walk.checkpoint_seen
        ):
            problem = ChainProblem(ProblemKind.CHECKPOINT_MISMATCH, checkpoint.seq)
    return VerifyReport(
        problem,
        head.anchor_seq,
        head.seq,
        walk.checked,
        legacy,
        checkpoint if problem is None else None,
    )


async def _count(connection: AsyncConnection, *conditions: Any) -> int:
    query = select(func.count()).select_from(audit_events)
    for condition in conditions:
        if condition is not None:
            query = query.where(condition)
    return int(await connection.scalar(query) or 0)


async def _anchor_problem(
    connection: AsyncConnection, keys: ChainKeys, anchor_seq: int, anchor_mac: str
) -> ChainProblem | None:
    """The anchor must be a checkpoint stored with a valid tag: the stored MACs of purged rows
    were readable, so without this anyone could move the anchor forward and delete history."""
    if anchor_seq == 0:
        return None
    c = audit_checkpoints.c
    rows = await connection.execute(select(c.seq, c.mac, c.token, c.tag).where(c.seq == anchor_seq))
    for row in rows:
        if macs_equal(row.mac, anchor_mac) and tag_ok(keys, row):
            return None
    return ChainProblem(ProblemKind.ANCHOR_INVALID, anchor_seq)


def tag_ok(keys: ChainKeys, row: Any) -> bool:
    """Whether a stored checkpoint row carries a valid tag under one of the chain keys."""
    return any(
        macs_equal(checkpoint_tag(key, row.seq, row.mac, row.token), row.tag) for key in keys.all()
    )


def _checkpoint_before_anchor(
    checkpoint: Checkpoint | None, anchor_seq: int, anchor_mac: str
) -> ChainProblem | None:
    if checkpoint is None or checkpoint.seq > anchor_seq:
        return None
    if checkpoint.seq == anchor_seq and macs_equal(checkpoint.mac, anchor_mac):
        return None
    if checkpoint.seq == anchor_seq:
        return ChainProblem(ProblemKind.CHECKPOINT_MISMATCH, checkpoint.seq)
    return ChainProblem(ProblemKind.CHECKPOINT_PURGED, checkpoint.seq)


async def _rows(
    connection: AsyncConnection, first: int, last: int, fetch_rows: int
) -> AsyncIterator[Row]:
    query = (
        select(audit_events)
        .where(audit_events.c.seq >= first, audit_events.c.seq <= last)
        .order_by(audit_events.c.seq)
        .execution_options(yield_per=fetch_rows)
    )
    result = await connection.stream(query)
    async for partition in result.mappings().partitions(fetch_rows):
        for row in partition:
            yield row


async def _walk(
    connection: AsyncConnection, walk: _Walk, last: int, fetch_rows: int
) -> ChainProblem | None:
    pending: Row | None = None
    async for row in _rows(connection, walk.expected, last, fetch_rows):
        if pending is not None and (problem := _step(walk, pending, row)):
            return problem
        pending = row
    if pending is not None and (problem := _step(walk, pending, None)):
        return problem
    if walk.expected <= last:
        # The head says more events exist than are stored: the newest ones were deleted.
        return ChainProblem(ProblemKind.DELETED, walk.expected)
    return None


def _mac_at(keys: ChainKeys, row: Row, seq: int, prev_mac: str) -> str | None:
    key = keys.get(row["key_id"])
    return None if key is None else event_mac(key, seq, row, prev_mac)


def _step(walk: _Walk, row: Row, nxt: Row | None) -> ChainProblem | None:
    seq = int(row["seq"])
    if seq != walk.expected:
        return ChainProblem(ProblemKind.DELETED, walk.expected)
    if walk.keys.get(row["key_id"]) is None:
        return ChainProblem(ProblemKind.UNKNOWN_KEY, seq, row["id"])
    if not macs_equal(_mac_at(walk.keys, row, seq, walk.prev_mac), row["mac"]):
        return ChainProblem(_classify(walk, row, nxt), seq, row["id"])
    if walk.checkpoint is not None and walk.checkpoint.seq == seq:
        if not macs_equal(walk.checkpoint.mac, row["mac"]):
            return ChainProblem(ProblemKind.CHECKPOINT_MISMATCH, seq, row["id"])
        walk.checkpoint_seen = True
    walk.expected = seq + 1
    walk.prev_mac = row["mac"]
    walk.prev_id = row["id"]
    walk.checked += 1
    return None


def _classify(walk: _Walk, row: Row, nxt: Row | None) -> ProblemKind:
    seq = int(row["seq"])
    keys = walk.keys
    if nxt is not None and int(nxt["seq"]) == seq + 1:
        if macs_equal(_mac_at(keys, nxt, seq, walk.prev_mac), nxt["mac"]):
            # The next row belongs here. If this row belongs right after it, the two were
            # swapped; otherwise this row was slipped in and the rest moved up.
            if macs_equal(_mac_at(keys, row, seq + 1, nxt["mac"]), row["mac"]):
                return ProblemKind.REORDERED
            return ProblemKind.INSERTED
        if macs_equal(_mac_at(keys, nxt, seq + 2, row["mac"]), nxt["mac"]):
            # Both rows verify one place further on: one event before them was removed and
            # the rest renumbered down to close the gap.
            return ProblemKind.DELETED
    out_of_order = (walk.prev_id is not None and row["id"] < walk.prev_id) or (
        nxt is not None and row["id"] > nxt["id"]
    )
    return ProblemKind.REORDERED if out_of_order else ProblemKind.MODIFIED


async def _extra_rows(connection: AsyncConnection, head: Any) -> ChainProblem | None:
    """Rows the chain does not account for: before the anchor (purged ranges are deleted in the
    same transaction that moves the anchor), beyond the head, or unchained but newer than
    every event written before the chain existed."""
    e = audit_events.c
    current_head = await connection.scalar(
        select(audit_chain_head.c.seq).where(audit_chain_head.c.id == HEAD_ROW_ID)
    )
    beyond = max(head.seq, int(current_head or 0))
    row = (
        await connection.execute(
            select(e.id, e.seq)
            .where((e.seq <= head.anchor_seq) | (e.seq > beyond))
            .order_by(e.seq)
            .limit(1)
        )
    ).first()
    if row is not None:
        return ChainProblem(ProblemKind.INSERTED, row.seq, row.id)
    unchained = await connection.scalar(
        select(func.min(e.id)).where(e.seq.is_(None), e.id > head.legacy_max_id)
    )
    if unchained is not None:
        return ChainProblem(ProblemKind.INSERTED, None, int(unchained))
    return None
