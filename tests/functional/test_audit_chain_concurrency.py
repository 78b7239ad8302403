"""Several writers append to one chain at once (SQLite and PostgreSQL): separate Database
instances in one process, and separate worker processes. The chain still verifies, gap-free,
with every event in it: appends are serialized on the chain head."""

from __future__ import annotations

import asyncio
import multiprocessing

from sqlalchemy import func, select
from tests.unit.audit.chain_helpers import KEYS, event

from bastion.audit.models import audit_events
from bastion.audit.sinks import DatabaseSink
from bastion.audit.verify import verify_chain
from bastion.storage import Database

WRITERS = 4
BATCHES = 15
BATCH = 5


async def _write(url: str, writer: int) -> None:
    database = Database(url)
    sink = DatabaseSink(database, KEYS)
    try:
        for b in range(BATCHES):
            base = (writer * BATCHES + b) * BATCH
            await sink.write([event(base + n, actor=f"writer-{writer}") for n in range(BATCH)])
    finally:
        await database.dispose()


def _process(url: str, writer: int) -> None:
    asyncio.run(_write(url, writer))


async def _check(database: Database) -> None:
    report = await verify_chain(database, KEYS)
    assert report.intact, report.problem
    total = WRITERS * BATCHES * BATCH
    assert report.checked == total
    async with database.engine.connect() as connection:
        count = await connection.scalar(select(func.count()).select_from(audit_events))
        seqs = await connection.scalar(select(func.count(func.distinct(audit_events.c.seq))))
    assert count == seqs == total


async def test_writers_with_their_own_connections_build_one_chain(database: Database) -> None:
    url = database.url.render_as_string(hide_password=False)
    await asyncio.gather(*(_write(url, w) for w in range(WRITERS)))
    await _check(database)


async def test_writer_processes_build_one_chain(database: Database) -> None:
    url = database.url.render_as_string(hide_password=False)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_process, args=(url, w)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * WRITERS
    await _check(database)
