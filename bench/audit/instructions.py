"""Instructions per request of recording an audit event, counted by valgrind's callgrind.

Time-based figures on the shared two-core machine move by 30 % between identical runs; the
number of instructions executed does not depend on the load. The app is
:func:`bench.audit.latency.build_app` (full stack, chained SQLite trail, ECS log line at info,
detectors on; ``--no-log-sink`` for the database alone). Counting is switched on after the app
is built and warm, covers ``--requests`` requests to one route *and* the recorder's writer
draining its queue (every thread: the aiosqlite thread's SQLite work included), then the counts
are dumped. ``/bench`` (records nothing) and ``/bench-audit`` (records one event) are counted in
separate processes; the difference is the whole cost of one event. Both paths are one route,
first in the table (since the thirteenth session; from the sixth, each process moved its counted
route to the front, and before that ``/bench-audit`` paid one more route match than ``/bench``).

``--batch N`` drives the requests N at a time and lets the writer write each group before the
next (its flush delay passes, the loop idle): batches of N events, as at a moderate request
rate (about 12 per batch at 200 requests/s with the 50 ms flush delay), where each batch's
transaction is shared by few events. Without it, the writer drains the whole queue at the end,
in batches of ``BASTION_AUDIT_BATCH_SIZE`` (200), as under saturation.

``--no-drain`` counts the requests alone: the writer never runs while counting (the requests
never give the loop a turn; checked: nothing written, every event still queued), so
``/bench-audit`` minus ``/bench`` is the request path's cost of an event (``record_from_scope``:
the capture, the scrub, the queue; the writer builds the ``AuditEvent``). ``--split`` runs
``/bench`` and ``/bench-audit`` without draining,
then ``/bench-audit`` at writer batches of 1, 4, 12 and 32: the writer's instructions per event
at each batch size, and a fit of ``per event + per batch / batch size``.

Usage: ``.venv/bin/python -m bench.audit.instructions [--requests 1000] [--no-log-sink]
[--batch N] [--no-drain] [--split]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

from bench import callgrind
from bench.audit.common import machine
from bench.http_overhead.inprocess import SCOPE, _receive, _send

PATHS = ("/bench", "/bench-audit")
_WARMUP = 300


async def _requests(app: Any, path: str, n: int, batch: int = 0, *, drain: bool = True) -> None:
    scope = {**SCOPE, "path": path, "raw_path": path.encode()}
    recorder = app.state.services.audit
    queue = recorder._queue  # noqa: SLF001 - the writer's work counts
    if not drain:
        written, queued = recorder.written_total, queue.qsize()
        for _ in range(n):
            await app(dict(scope), _receive, _send)
        # The writer must not have run: nothing written, every event recorded still queued.
        events = n if path == "/bench-audit" else 0
        if recorder.written_total != written or queue.qsize() != queued + events:
            raise SystemExit("the writer ran during a --no-drain count")
        return
    group = batch or n
    for start in range(0, n, group):
        for _ in range(min(group, n - start)):
            await app(dict(scope), _receive, _send)
        if batch:
            await queue.join()
    await queue.join()


async def _drive(
    path: str,
    n: int,
    flags: Path,
    *,
    log_sink: bool,
    batch: int = 0,
    drain: bool = True,
) -> None:
    """Run inside valgrind: build and warm up, wait for counting, drive, wait to be stopped."""
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415
    from bench.audit.latency import build_app  # noqa: PLC0415

    bastion_logging.configure("info", json=True, stream=open(os.devnull, "w"))  # noqa: ASYNC230, SIM115, PTH123
    await migrate.upgrade(f"sqlite+aiosqlite:///{flags / 'bastion.db'}")
    app = build_app(flags, None, log_sink=log_sink, detectors=True)
    async with app.router.lifespan_context(app):
        await _requests(app, path, _WARMUP)
        callgrind.ready(flags)
        await _requests(app, path, n, batch, drain=drain)
        callgrind.done(flags)


def count(
    path: str,
    n: int,
    *,
    log_sink: bool = True,
    batch: int = 0,
    drain: bool = True,
) -> float:
    """Instructions per request to ``path`` (with the writer's work unless not ``drain``), in a
    fresh process."""
    extra = [] if log_sink else ["--no-log-sink"]
    extra += [f"--batch={batch}"] if batch else []
    extra += [] if drain else ["--no-drain"]
    return callgrind.count(
        "bench.audit.instructions", [path], n, extra=extra, label=path, timeout=900
    )


SPLIT_BATCHES = (1, 4, 12, 32)


def split(n: int, *, log_sink: bool) -> None:
    """The request path's and the writer's instructions per event (see the module docstring)."""
    base = count("/bench", n, log_sink=log_sink, drain=False)
    request = count("/bench-audit", n, log_sink=log_sink, drain=False)
    print(f"request path: /bench {base:,.0f}, /bench-audit {request:,.0f} (writer not run)")
    print(f"  an event on the request path: +{request - base:,.0f}")
    writer: dict[int, float] = {}
    for batch in SPLIT_BATCHES:
        total = count("/bench-audit", n, log_sink=log_sink, batch=batch)
        writer[batch] = total - request
        print(
            f"  batches of {batch:2}: /bench-audit {total:,.0f}, writer {writer[batch]:,.0f} an "
            f"event, event in all +{total - base:,.0f}",
            flush=True,
        )
    # Least squares of writer = per_event + per_batch * (1 / batch).
    xs = [1 / b for b in writer]
    ys = list(writer.values())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    print(f"  writer fit: {my - slope * mx:,.0f} an event + {slope:,.0f} a batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--no-log-sink", action="store_true", help="Database sink only.")
    parser.add_argument(
        "--batch", type=int, default=0, help="Requests per writer batch (0: one drain at the end)."
    )
    parser.add_argument(
        "--no-drain", action="store_true", help="Count the requests alone (the writer not run)."
    )
    parser.add_argument(
        "--split", action="store_true", help="Request path and writer at batches 1, 4, 12, 32."
    )
    parser.add_argument("--drive", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        path, n, flags = args.drive
        asyncio.run(
            _drive(
                path,
                int(n),
                Path(flags),
                log_sink=not args.no_log_sink,
                batch=args.batch,
                drain=not args.no_drain,
            )
        )
        return
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    print(f"run: {machine()}")
    log_sink = not args.no_log_sink
    if args.split:
        split(args.requests, log_sink=log_sink)
        return
    counts = {
        path: count(
            path,
            args.requests,
            log_sink=log_sink,
            batch=args.batch,
            drain=not args.no_drain,
        )
        for path in PATHS
    }
    base, audited = counts["/bench"], counts["/bench-audit"]
    sinks = "database + ECS log line" if log_sink else "database only"
    order = "one route for both paths"
    order += f", writer batches of {args.batch}" if args.batch else ""
    print(
        f"{args.requests} requests per route ({sinks}, {order}), instructions per request "
        "(writer included)"
    )
    print(f"  /bench        {base:12,.0f}")
    print(f"  /bench-audit  {audited:12,.0f}")
    print(f"  one event: +{audited - base:,.0f} instructions, ratio {audited / base:.3f}")


if __name__ == "__main__":
    main()
