"""The audit writer's instructions per batch, piece by piece, counted by callgrind.

:mod:`bench.audit.instructions` ``--split`` gives the writer's whole cost per event at a batch
size; this splits it. One process under callgrind builds :func:`bench.audit.latency.build_app`
(full stack, chained SQLite trail, ECS log line at info, detectors on), warms it, then runs
each phase ``--batches`` times on batches of ``--size`` of the bench handler's events (as
``record()`` queues them: details scrubbed), with callgrind's counts dumped between two phases:

- ``database``: ``DatabaseSink.write`` (links, the transaction, the subscribers' hand-out);
- ``transaction``: ``Database.transaction`` of a callable that does nothing (the storage
  layer's fixed cost of a batch's transaction);
- ``log``: ``LogSink.write`` (the ECS lines);
- ``writes``: the recorder's ``_write`` (both sinks through ``asyncio.gather``, retries armed);
- ``sequential``: both sinks' ``write`` on one batch, one after the other (``writes`` minus
  this is ``asyncio.gather``'s own cost);
- ``gather``: ``asyncio.gather`` of two coroutines that do nothing;
- ``direct_lines``: the log sink's per-batch resolution of the logging configuration;
- ``writer``: the events recorded then the queue joined (the writer's whole loop: its wake-up,
  the flush timer, the take, ``_write``), minus nothing: ``record()`` is counted in it.

``--uvloop`` runs the driver on uvloop's event loop (as ``bastion serve`` and uvicorn do): the
loop's own work per turn (ready callbacks, timers, the selector) is then C, not Python.

Usage: ``.venv/bin/python -m bench.audit.writer [--size 1] [--batches 200] [--uvloop]
[--keep DIR] [phase ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.audit.common import machine
from bench.audit.pieces import _SCOPE

PHASES = (
    "database",
    "transaction",
    "log",
    "writes",
    "sequential",
    "gather",
    "direct_lines",
    "writer",
)
_WARMUP = 100


def _events(size: int) -> list[Any]:
    from bastion.audit.context import event_from_scope  # noqa: PLC0415
    from bastion.audit.events import EventType, Outcome  # noqa: PLC0415
    from bastion.audit.recorder import scrub, with_details  # noqa: PLC0415

    events = []
    for _ in range(size):
        event = event_from_scope(
            _SCOPE,
            EventType.IDENTITY_PROFILE_UPDATED,
            Outcome.SUCCESS,
            actor="user:bench",
            subject="user:bench",
            details={"fields": ["display_name"]},
        )
        events.append(with_details(event, scrub(event.details)))
    return events


def _phases(app: Any, size: int) -> dict[str, Callable[[], Awaitable[Any]]]:
    from bastion.audit.recorder import Batch  # noqa: PLC0415
    from bastion.audit.sinks import AUDIT_LOG_EVENT, DatabaseSink, LogSink  # noqa: PLC0415

    try:
        from bastion.audit.sinks._log import _LINE_FIELDS  # noqa: PLC0415
    except ImportError:  # a tree before sinks.py became a package
        from bastion.audit.sinks import _LINE_FIELDS  # type: ignore[attr-defined,no-redef] # noqa: PLC0415
    from bastion.logging import direct_lines  # noqa: PLC0415

    recorder = app.state.services.audit
    sinks = recorder._sinks  # noqa: SLF001 - the recorder's own sinks
    database_sink = next(s for s in sinks if type(s) is DatabaseSink)
    log_sink = next(s for s in sinks if type(s) is LogSink)
    database = database_sink._database  # noqa: SLF001
    queue = recorder._queue  # noqa: SLF001

    async def writer() -> None:
        for event in _events(size):
            recorder.record(event)
        await queue.join()

    def nothing(_connection: Any) -> None:
        return None

    async def sequential() -> None:
        batch = Batch(_events(size))
        await database_sink.write(batch)
        await log_sink.write(batch)

    async def idle() -> None:
        return None

    async def gather() -> None:
        _events(size)  # as every phase: the events' making is taken off
        await asyncio.gather(idle(), idle())

    async def direct() -> None:
        _events(size)
        direct_lines(AUDIT_LOG_EVENT, logging.INFO, _LINE_FIELDS)

    return {
        "database": lambda: database_sink.write(Batch(_events(size))),
        "transaction": lambda: database.transaction(nothing),
        "log": lambda: log_sink.write(Batch(_events(size))),
        "writes": lambda: recorder._write(_events(size)),  # noqa: SLF001
        "sequential": sequential,
        "gather": gather,
        "direct_lines": direct,
        "writer": writer,
    }


def _wait(flag: Path) -> None:
    while not flag.exists():
        time.sleep(0.05)


async def _drive(size: int, batches: int, phases: list[str], flags: Path) -> None:
    from bastion import logging as bastion_logging  # noqa: PLC0415
    from bastion.storage import migrate  # noqa: PLC0415
    from bench.audit.latency import build_app  # noqa: PLC0415

    bastion_logging.configure("info", json=True, stream=open(os.devnull, "w"))  # noqa: ASYNC230, SIM115, PTH123
    await migrate.upgrade(f"sqlite+aiosqlite:///{flags / 'bastion.db'}")
    app = build_app(flags, None, log_sink=True, detectors=True)
    async with app.router.lifespan_context(app):
        run = _phases(app, size)
        for name in phases:
            for _ in range(_WARMUP):
                await run[name]()
        # The events' own making (_events) is counted apart and taken off each phase.
        marks = [*phases, "events"]
        partial = flags / "ready.partial"
        partial.write_text(str(os.getpid()))
        partial.replace(flags / "ready")
        _wait(flags / "go")
        for n, name in enumerate(marks):
            if name == "events":
                for _ in range(batches):
                    _events(size)
            else:
                for _ in range(batches):
                    await run[name]()
            (flags / f"mark-{n}").touch()
            _wait(flags / f"ack-{n}")


def _measure(
    size: int, batches: int, phases: list[str], keep: Path | None = None, *, uvloop: bool = False
) -> dict[str, float]:
    marks = [*phases, "events"]
    with tempfile.TemporaryDirectory() as name:
        flags = Path(name)
        out = flags / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command += [f"--callgrind-out-file={out}", sys.executable, "-m", "bench.audit.writer"]
        command += ["--drive", str(flags), f"--size={size}", f"--batches={batches}", *phases]
        command += ["--uvloop"] if uvloop else []
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _until(flags / "ready", proc)
            pid = (flags / "ready").read_text()
            subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True, check=True)
            (flags / "go").touch()
            for n in range(len(marks)):
                _until(flags / f"mark-{n}", proc)
                subprocess.run(
                    ["callgrind_control", "--dump", pid], capture_output=True, check=True
                )
                (flags / f"ack-{n}").touch()
            proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
        counts = {}
        for n, mark in enumerate(marks, 1):
            text = out.with_name(f"{out.name}.{n}").read_text()
            match = re.search(r"^summary: (\d+)", text, re.MULTILINE)
            if match is None:
                raise SystemExit(f"no summary in dump {n}")
            counts[mark] = int(match.group(1)) / batches
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(out.with_name(f"{out.name}.{n}"), keep / f"callgrind.{mark}.out")
    return counts


def _until(flag: Path, proc: subprocess.Popen[bytes]) -> None:
    while not flag.exists():
        if proc.poll() is not None:
            raise SystemExit(f"the driver exited with {proc.returncode}")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--keep", type=Path, help="Copy each phase's callgrind file here.")
    parser.add_argument("--uvloop", action="store_true", help="Drive on uvloop's event loop.")
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    parser.add_argument("phases", nargs="*", default=list(PHASES))
    args = parser.parse_args()
    if args.drive:
        drive = _drive(args.size, args.batches, args.phases, Path(args.drive))
        if args.uvloop:
            import uvloop  # noqa: PLC0415

            uvloop.run(drive)
        else:
            asyncio.run(drive)
        return
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing: apt-get install -y valgrind")
    print(f"run: {machine()}")
    counts = _measure(args.size, args.batches, args.phases, args.keep, uvloop=args.uvloop)
    events = counts.pop("events")
    loop = "uvloop" if args.uvloop else "asyncio's loop"
    print(
        f"instructions per batch of {args.size} ({args.batches} batches, {loop}; the events' "
        "making, "
        f"{events:,.0f} a batch, taken off; per event in brackets)"
    )
    for name, count in counts.items():
        net = count - events if name != "transaction" else count
        print(f"  {name:12} {net:12,.0f}  ({net / args.size:,.0f})")


if __name__ == "__main__":
    main()
