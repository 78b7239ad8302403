"""Appending to the chain, on every backend and with any number of worker processes.

The batch's transaction *first* updates the one ``audit_chain_head`` row. That write takes the
head's row lock on PostgreSQL (a concurrent appender blocks on it until this transaction ends,
then reads the head it left) and SQLite's database write lock (a transaction that starts with a
write never works from a stale snapshot; the next writer waits: on the write gate and busy
retries of the inline driver, or in ``busy_timeout`` with aiosqlite). Only then are the sequence
numbers and MACs computed, the rows inserted and the head moved, all in one transaction: appends
are serialized, so concurrent writers still build one gap-free chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit.chain import GENESIS_MAC, ChainKey, ChainKeys, canonical_tail, link_macs
from bastion.audit.errors import AuditWriteFailed, ChainHeadMissing
from bastion.audit.models import HEAD_ROW_ID, audit_chain_head, audit_events
from bastion.audit.recorder import WRITE_SLICE
from bastion.audit.sinks._rows import (
    _LOCK_HEAD,
    _MOVE_HEAD,
    _TEXTS,
    _Insert,
    _insert_for,
    _Link,
)
from bastion.storage.sqlite_inline import InlineUnit

#: Batches of at most this many rows are appended as one unit of
#: :meth:`~bastion.storage.Database.try_unit` when it can run (:func:`append_unit`): no greenlet
#: and no SQLAlchemy transaction (~80,000 instructions less a batch), but one statement per row
#: instead of one ``executemany`` a chunk (~2,700 more a row): larger batches (a backlog) take
#: the ordinary path.
UNIT_ROWS = WRITE_SLICE
#: Rows prepared, then chained and inserted per statement, between two yields to the event loop
#: (inside the batch's transaction too: see :func:`_append`); a recorder's batch says its own.
INSERT_CHUNK = WRITE_SLICE


async def lock_head(connection: AsyncConnection) -> tuple[int, str]:
    """Lock the chain head for this transaction (see the module docstring); its seq and MAC.

    Creates the head of an empty chain if it is missing (a schema made without the migrations);
    raises ChainHeadMissing if chained events exist without a head (it was deleted).
    """
    return await connection.run_sync(_lock_head)


def _lock_head(connection: Connection) -> tuple[int, str]:
    result = connection.execute(_LOCK_HEAD)
    row = result.first()
    if row is not None:
        return int(row.seq), str(row.mac)
    chained = connection.scalar(
        select(audit_events.c.id).where(audit_events.c.seq.is_not(None)).limit(1)
    )
    if chained is not None:
        raise ChainHeadMissing
    legacy = connection.scalar(select(audit_events.c.id).order_by(audit_events.c.id.desc()))
    connection.execute(
        insert(audit_chain_head).values(
            id=HEAD_ROW_ID,
            seq=0,
            mac=GENESIS_MAC,
            anchor_seq=0,
            anchor_mac=GENESIS_MAC,
            legacy_max_id=legacy or 0,
        )
    )
    return 0, GENESIS_MAC


async def append_rows(
    connection: AsyncConnection, keys: ChainKeys, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Chain and insert ``rows`` (as made by :func:`event_row`) inside the caller's transaction;
    return the first one's sequence number."""
    insert_ = _insert_for(connection.dialect)
    links: list[_Link] = []
    for row in rows:
        texts = tuple(row[name] for name in _TEXTS)
        content = insert_.content(row["time"], texts, row["details"])
        links.append((content, canonical_tail(row["time"], texts, row["details"])))
    return await connection.run_sync(lambda sync: _append(sync, keys, insert_, links, INSERT_CHUNK))


def _append(
    connection: Connection, keys: ChainKeys, insert_: _Insert, links: Sequence[_Link], size: int
) -> int:
    """Chain and insert ``links`` inside ``connection``'s transaction (SQLAlchemy's synchronous
    API: run in a greenlet, the driver's waits suspend through it); the first sequence number.

    Chunks of ``size`` rows (their MACs and their insert). On PostgreSQL the event loop runs
    during each statement's round trip (the driver's waits), the head's row lock held. On an
    inline SQLite file the transaction is one step of the loop, on purpose: it holds the
    process's write gate and the kept connection, and a yield inside it would send every write
    arriving meanwhile (logins, rotations) to a pooled connection that must re-read its pages
    (docs/benchmarks.md, "refresh5"); the steps before and after it (preparation, subscribers,
    log lines, detectors) are sliced instead.

    The statements run on the driver's cursor (SQLAlchemy's execution context and result per
    statement cost more than a small chunk's rows); the driver's errors become
    AuditWriteFailed, as SQLAlchemy's do in :meth:`DatabaseSink.write`."""
    cursor = connection.connection.cursor()
    try:
        seq, mac = _lock_head_on(connection, cursor, insert_)
        first = seq + 1
        key = keys.current
        for start in range(0, len(links), size):
            chunk = links[start : start + size]
            seq, mac = _insert_chunk(cursor, insert_, chunk, key=key, head=(seq, mac))
        if insert_.plain_head:
            cursor.execute(insert_.move_sql, (seq, mac, HEAD_ROW_ID))
        else:
            connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_mac": mac})
    except connection.dialect.loaded_dbapi.Error as exc:
        raise AuditWriteFailed from exc
    finally:
        cursor.close()
    return first


def append_unit(
    unit: InlineUnit, keys: ChainKeys, insert_: _Insert, links: Sequence[_Link], size: int
) -> int | None:
    """:func:`_append` as a unit of :meth:`~bastion.storage.Database.try_unit` (an inline
    SQLite file: the same statements and commit in one synchronous call on the loop's thread,
    no greenlet and no SQLAlchemy connection or transaction); the first sequence number, or
    None (nothing written) when the insert's parameters need processing or the head is missing:
    the caller's ordinary path then creates the head (or refuses) as :func:`_append` does.

    The statements run one by one on the unit (it has no ``executemany``): for SQLite, the
    same compiled statements from the connection's cache, with the same parameters."""
    if not (insert_.plain and insert_.plain_head):
        return None
    fetch = unit.fetch
    rows, _ = fetch(insert_.lock_sql, (HEAD_ROW_ID,))
    if not rows:
        return None
    seq, mac = int(rows[0][0]), str(rows[0][1])
    first = seq + 1
    key = keys.current
    key_id, sql = key.key_id, insert_.sql
    for start in range(0, len(links), size):
        chunk = links[start : start + size]
        macs = link_macs(key, seq, mac, [tail for _, tail in chunk])
        for (content, _), link in zip(chunk, macs, strict=True):
            seq += 1
            fetch(sql, (*content, seq, link, key_id))
        mac = macs[-1]
    fetch(insert_.move_sql, (seq, mac, HEAD_ROW_ID))
    return first


def _lock_head_on(connection: Connection, cursor: Any, insert_: _Insert) -> tuple[int, str]:
    """:func:`_lock_head`, on the driver's ``cursor`` when the head exists."""
    if insert_.plain_head:
        cursor.execute(insert_.lock_sql, (HEAD_ROW_ID,))
        row = cursor.fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
    return _lock_head(connection)  # through SQLAlchemy: creates a missing head (or refuses)


def _insert_chunk(
    cursor: Any, insert_: _Insert, chunk: Sequence[_Link], *, key: ChainKey, head: tuple[int, str]
) -> tuple[int, str]:
    """Chain ``chunk`` after ``head`` (seq, MAC) with ``key`` and insert it on the driver's
    ``cursor``; the new head."""
    seq, mac = head
    key_id = key.key_id
    macs = link_macs(key, seq, mac, [tail for _, tail in chunk])
    numbers = range(seq + 1, seq + 1 + len(chunk))
    if insert_.plain:
        params: list[Any] = [
            (*content, n, link, key_id)
            for n, (content, _), link in zip(numbers, chunk, macs, strict=True)
        ]
    else:
        params = [
            insert_.params(content, n, link, key_id)
            for n, (content, _), link in zip(numbers, chunk, macs, strict=True)
        ]
    cursor.executemany(insert_.sql, params)
    return seq + len(chunk), macs[-1]
