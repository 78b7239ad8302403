"""Sustained audit events/s into the chained trail, SQLite and PostgreSQL.

Baseline in the same run: the same rows inserted in the same batches *without* the chain (no
head lock, no MAC). Then the chained ``DatabaseSink`` with one writer, and with ``--writers``
concurrent writers (separate ``Database`` instances, as separate workers would be) appending to
the one chain. Batches are ``--batch`` events (the recorder's default batch is 200).

Usage: ``.venv/bin/python -m bench.audit.throughput [--events 20000] [--batch 200]
[--writers 4] [--backends sqlite,postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sqlalchemy import insert

from bastion.audit.models import audit_events
from bastion.audit.sinks import DatabaseSink, event_row
from bastion.audit.verify import verify_chain
from bastion.storage import Database
from bench.audit.common import KEYS, event, fresh_database, machine


async def plain(url: str, events: int, batch: int) -> float:
    database = Database(url)
    try:
        start = time.perf_counter()
        for first in range(0, events, batch):
            rows = [event_row(event(n)) for n in range(first, min(first + batch, events))]
            async with database.engine.begin() as connection:
                await connection.execute(insert(audit_events), rows)
        return events / (time.perf_counter() - start)
    finally:
        await database.dispose()


async def _writer(url: str, first: int, count: int, batch: int) -> None:
    database = Database(url)
    sink = DatabaseSink(database, KEYS)
    try:
        for start in range(first, first + count, batch):
            await sink.write([event(n) for n in range(start, min(start + batch, first + count))])
    finally:
        await database.dispose()


async def chained(url: str, events: int, batch: int, writers: int) -> float:
    share = events // writers
    start = time.perf_counter()
    await asyncio.gather(*(_writer(url, w * share, share, batch) for w in range(writers)))
    rate = share * writers / (time.perf_counter() - start)
    database = Database(url)
    try:
        report = await verify_chain(database, KEYS)
    finally:
        await database.dispose()
    if not report.intact:
        raise SystemExit(f"chain broken after the run: {report.problem}")
    return rate


async def main_async(events: int, batch: int, writers: int, backends: list[str]) -> None:
    print(f"run: {machine()}")
    print(f"{events} events per measurement, batches of {batch}")
    for backend in backends:
        async with fresh_database(backend) as url:
            base = await plain(url, events, batch)
        async with fresh_database(backend) as url:
            one = await chained(url, events, batch, 1)
        async with fresh_database(backend) as url:
            many = await chained(url, events, batch, writers)
        print(f"{backend}:")
        print(f"  plain inserts (baseline)    {base:9,.0f} events/s")
        print(f"  chained, 1 writer           {one:9,.0f} events/s  ({one / base:.2f}x)")
        print(f"  chained, {writers} writers          {many:9,.0f} events/s  ({many / base:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    asyncio.run(main_async(args.events, args.batch, args.writers, args.backends.split(",")))


if __name__ == "__main__":
    main()
