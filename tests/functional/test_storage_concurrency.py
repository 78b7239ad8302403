"""Concurrent writers and readers on one database (SQLite WAL + busy_timeout, PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func, select

from bastion.audit.chain import ChainKeys
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.models import audit_events
from bastion.audit.sinks import DatabaseSink
from bastion.crypto import Keyring
from bastion.storage import Database

WRITERS = 20
BATCH = 50


def batch(writer: int) -> list[AuditEvent]:
    return [
        AuditEvent(
            type=EventType.HTTP_REQUEST_REJECTED,
            outcome=Outcome.FAILURE,
            time=datetime.now(UTC),
            request_id=f"w{writer}-{n}",
        )
        for n in range(BATCH)
    ]


async def count(database: Database) -> int:
    async with database.session() as session:
        return int(
            (await session.execute(select(func.count()).select_from(audit_events))).scalar_one()
        )


async def test_concurrent_writers_and_readers_all_succeed(database: Database) -> None:
    # Without WAL and a busy timeout, SQLite fails concurrent writers with "database is locked".
    sink = DatabaseSink(database, ChainKeys.from_keyring(Keyring(b"k" * 32)))
    writes = [sink.write(batch(w)) for w in range(WRITERS)]
    reads = [count(database) for _ in range(WRITERS)]
    results = await asyncio.gather(*writes, *reads)
    seen = results[WRITERS:]
    assert all(0 <= n <= WRITERS * BATCH for n in seen)  # type: ignore[operator]
    assert await count(database) == WRITERS * BATCH
