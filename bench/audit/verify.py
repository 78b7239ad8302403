"""``bastion audit verify`` over a large trail: time to walk 1,000,000 chained events.

The events are generated fast, bypassing the recorder: rows and MACs computed in Python, bulk
inserted in large batches (``executemany`` on SQLite, ``COPY`` on PostgreSQL), then the head row
set. The walk itself is the code the CLI runs (:func:`bastion.audit.verify.verify_chain`),
timed in wall clock and CPU; the baseline in the same run is a plain streaming read of the same
rows (the cost of fetching them at all), so the ratio is the cost of checking every link.

Usage: ``.venv/bin/python -m bench.audit.verify [--events 1000000] [--backends sqlite,postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import asyncpg
from sqlalchemy import insert, select, update

from bastion.audit.chain import GENESIS_MAC, event_mac
from bastion.audit.models import HEAD_ROW_ID, audit_chain_head, audit_events
from bastion.audit.sinks import event_row
from bastion.audit.verify import verify_chain
from bastion.storage import Database
from bastion.storage.database import normalize_url
from bench.audit.common import KEYS, event, fresh_database, machine

CHUNK = 20_000
COLUMNS = (
    "time",
    "type",
    "outcome",
    "actor",
    "subject",
    "client_ip",
    "user_agent",
    "request_id",
    "reason",
    "details",
    "seq",
    "mac",
    "key_id",
)


def chained_rows(first: int, count: int, prev: str) -> tuple[list[dict[str, Any]], str]:
    rows = []
    key = KEYS.current
    for seq in range(first, first + count):
        row = event_row(event(seq))
        prev = event_mac(key, seq, row, prev)
        row.update(seq=seq, mac=prev, key_id=key.key_id)
        rows.append(row)
    return rows, prev


async def generate(url: str, events: int) -> float:
    start = time.perf_counter()
    prev = GENESIS_MAC
    if url.startswith("postgresql"):
        dsn = normalize_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            for first in range(1, events + 1, CHUNK):
                rows, prev = chained_rows(first, min(CHUNK, events + 1 - first), prev)
                records = [
                    tuple(json.dumps(r[c]) if c == "details" else r[c] for c in COLUMNS)
                    for r in rows
                ]
                await connection.copy_records_to_table(
                    "audit_events", records=records, columns=COLUMNS
                )
        finally:
            await connection.close()
    else:
        database = Database(url)
        try:
            async with database.engine.begin() as connection:
                for first in range(1, events + 1, CHUNK):
                    rows, prev = chained_rows(first, min(CHUNK, events + 1 - first), prev)
                    await connection.execute(insert(audit_events), rows)
        finally:
            await database.dispose()
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(
                update(audit_chain_head)
                .where(audit_chain_head.c.id == HEAD_ROW_ID)
                .values(seq=events, mac=prev)
            )
    finally:
        await database.dispose()
    return time.perf_counter() - start


async def read_all(url: str) -> float:
    database = Database(url)
    try:
        start = time.perf_counter()
        async with database.engine.connect() as connection:
            result = await connection.stream(
                select(audit_events).order_by(audit_events.c.seq).execution_options(yield_per=5000)
            )
            async for partition in result.mappings().partitions(5000):
                for _row in partition:
                    pass
        return time.perf_counter() - start
    finally:
        await database.dispose()


async def walk(url: str) -> tuple[float, float, int]:
    database = Database(url)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        report = await verify_chain(database, KEYS)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        await database.dispose()
    if not report.intact:
        raise SystemExit(f"generated chain does not verify: {report.problem}")
    return wall, cpu, report.checked


async def main_async(events: int, backends: list[str]) -> None:
    print(f"run: {machine()}")
    for backend in backends:
        async with fresh_database(backend) as url:
            made = await generate(url, events)
            read = await read_all(url)
            wall, cpu, checked = await walk(url)
        print(f"{backend}: {checked:,} events (generated in {made:.0f} s)")
        print(f"  streaming read only (baseline)  {read:7.1f} s")
        print(
            f"  verify_chain                    {wall:7.1f} s wall, {cpu:.1f} s CPU "
            f"({checked / wall:,.0f} events/s, {wall / read:.2f}x the read)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    asyncio.run(main_async(args.events, args.backends.split(",")))


if __name__ == "__main__":
    main()
