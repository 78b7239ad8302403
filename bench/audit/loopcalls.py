"""Diagnostic: how long single SQLite calls hold the event loop while audit events are recorded.

Not a benchmark (the machine is shared; wall times are noisy): it counts the inline driver's
calls on the loop thread while ``--requests`` requests to ``/bench-audit`` are driven in process
on the default ``sqlite://`` database (the ``sqlite+inline`` driver), then reports the longest
calls by CPU time (``time.thread_time``, stable) and by wall time (which includes a call's
waits in the kernel, such as an ``fsync`` inside a WAL checkpoint).

To count the loop thread's ``fsync`` calls, run it under strace and keep the lines of the
printed thread id: ``strace -f -e trace=fsync,fdatasync -o /tmp/fsync.txt .venv/bin/python -m
bench.audit.loopcalls``.

Usage: ``.venv/bin/python -m bench.audit.loopcalls [--requests 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.http_overhead.inprocess import SCOPE, _receive, _send

_T = TypeVar("_T")
TOP = 5


class Calls:
    """Per-call CPU and wall times of the inline driver's calls on the loop thread."""

    def __init__(self) -> None:
        self.count = 0
        self.cpu: list[tuple[float, str]] = []
        self.wall: list[tuple[float, str]] = []

    def add(self, cpu: float, wall: float, label: str) -> None:
        self.count += 1
        self.cpu.append((cpu, label))
        self.wall.append((wall, label))

    def report(self) -> None:
        print(f"  on-loop SQLite calls: {self.count}; CPU ms by call: count, mean, max")
        by_label: dict[str, list[float]] = {}
        for seconds, label in self.cpu:
            by_label.setdefault(label, []).append(seconds * 1e3)
        for label, values in sorted(by_label.items(), key=lambda item: -max(item[1])):
            mean = sum(values) / len(values)
            print(f"    {label:50} {len(values):6} {mean:7.3f} {max(values):7.3f}")
        for name, values in (("CPU (thread_time)", self.cpu), ("wall", self.wall)):
            top = sorted(values, reverse=True)[:TOP]
            shown = ", ".join(f"{seconds * 1e3:.2f} ms {label}" for seconds, label in top)
            print(f"  longest by {name}: {shown}")


def _instrument(calls: Calls) -> None:
    from bastion.storage import sqlite_inline  # noqa: PLC0415

    original = sqlite_inline.InlineConnection.call_async

    async def call_async(
        self: sqlite_inline.InlineConnection, call: Callable[[], _T], kind: str = "read"
    ) -> _T:
        label = getattr(call, "__qualname__", "call")

        def timed() -> _T:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return call()
            finally:
                calls.add(time.thread_time() - cpu, time.perf_counter() - wall, f"{kind}:{label}")

        return await original(self, timed, kind)

    sqlite_inline.InlineConnection.call_async = call_async  # type: ignore[method-assign]


async def _run(requests: int) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415
    from bench.audit.latency import build_app  # noqa: PLC0415

    bastion_logging.configure("info", json=True, stream=open(os.devnull, "w"))  # noqa: ASYNC230, SIM115, PTH123
    data_dir = Path(tempfile.mkdtemp())
    await migrate.upgrade(f"sqlite+aiosqlite:///{data_dir / 'bastion.db'}")
    app = build_app(data_dir, None, log_sink=True, detectors=True)
    calls = Calls()
    scope = {**SCOPE, "path": "/bench-audit", "raw_path": b"/bench-audit"}
    async with app.router.lifespan_context(app):
        _instrument(calls)
        queue = app.state.services.audit._queue  # noqa: SLF001 - waits for the writer
        for n in range(requests):
            await app(dict(scope), _receive, _send)
            if n % 100 == 99:
                await asyncio.sleep(0.001)  # let the writer's batches be of a realistic size
        await queue.join()
        checkpointer = app.state.services.database.checkpointer
        if checkpointer is not None:
            await checkpointer.idle()
            checkpoints = f"{checkpointer.runs} in a worker thread, the last {checkpointer.last}"
        else:
            checkpoints = "none (SQLite's own, inside commits)"
    wal = data_dir / "bastion.db-wal"
    thread = threading.get_native_id()
    print(f"{requests} requests to /bench-audit, sqlite+inline; loop thread id {thread}")
    calls.report()
    print(f"  WAL checkpoints by the checkpointer: {checkpoints}")
    print(f"  WAL file after close: {wal.stat().st_size if wal.exists() else 0} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(_run(args.requests))


if __name__ == "__main__":
    main()
