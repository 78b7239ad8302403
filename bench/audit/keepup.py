"""Whether the audit writer keeps up with a saturated worker: counts, no timing.

The event loop gives every ready task one turn per iteration. In a saturated worker, each
iteration serves about one request per connection; the recorder's writer gets one turn (per
sink) in the same iteration. This drives :func:`bench.audit.latency.build_app` (full stack,
chained SQLite trail, ECS log line, detectors) in process with ``--connections`` tasks, each
sending one ``/bench-audit`` request (one event) and then yielding once, ``--requests`` times,
and reports how many events the writer wrote while the load lasted, how many were still queued
at its end and the deepest queue seen (sampled once per iteration). A writer that falls behind
shows a queue that grows with the load (a longer run would fill it and drop events).

Usage: ``.venv/bin/python -m bench.audit.keepup [--connections 32] [--requests 300]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from bench.http_overhead.inprocess import SCOPE, _receive, _send


async def main_async(connections: int, requests: int) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415
    from bench.audit.latency import build_app  # noqa: PLC0415

    bastion_logging.configure("info", json=True, stream=open(os.devnull, "w"))  # noqa: ASYNC230, SIM115, PTH123
    data_dir = Path(tempfile.mkdtemp())
    await migrate.upgrade(f"sqlite+aiosqlite:///{data_dir / 'bastion.db'}")
    app = build_app(data_dir, None, log_sink=True, detectors=True)
    recorder = app.state.services.audit
    scope = {**SCOPE, "path": "/bench-audit", "raw_path": b"/bench-audit"}

    async def connection() -> None:
        for _ in range(requests):
            await app(dict(scope), _receive, _send)
            await asyncio.sleep(0)  # the next request arrives in the next iteration

    depths: list[int] = []

    async def sample() -> None:
        while True:
            depths.append(recorder.queue_depth)
            await asyncio.sleep(0)

    async with app.router.lifespan_context(app):
        await recorder._queue.join()  # noqa: SLF001 - the startup's events written first
        written = recorder.written_total
        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(connection() for _ in range(connections)))
        sampler.cancel()
        left = recorder.queue_depth
        written = recorder.written_total - written
    total = connections * requests
    print(
        f"{connections} connections x {requests} requests ({total} events): written during the "
        f"load {written}, still queued at its end {left}, deepest queue {max(depths)}; "
        f"dropped {recorder.dropped_total}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main_async(args.connections, args.requests))


if __name__ == "__main__":
    main()
