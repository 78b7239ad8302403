"""Server CPU per refresh rotation over HTTP, without wall-clock figures: where a served
rotation's CPU goes, one variable at a time.

One real ``bastion serve`` worker (:func:`bench.identity.http.start_bastion`, pinned to CPU 0;
this client on CPU 1). Each step of ``--plan`` opens ``C`` sessions and chains a fixed number
of refreshes over ``C`` keep-alive connections (each connection its own session's chain),
and reads the worker's ``/proc`` counters around them: user and system CPU (the event loop's
thread apart from the others), minor faults, context switches; divided by the refreshes done.
The steps run one after another on the same database, so repeating a step later shows what the
tables' growth costs. ``--env NAME=VALUE`` (repeatable) passes variables to the worker, e.g.
the diagnostic hooks of ``bench/identity/diag_site`` (garbage collector counts per refresh,
audit off, the WAL checkpoint interval) with ``--diag``. Usage::

    .venv/bin/python -m bench.identity.served_cpu [--refreshes 3000] [--plan 1,4,32,1]
        [--diag] [--env BENCH_DIAG_AUDIT=off] [--strace DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.identity import http
from bench.identity.http import Connection, create_user, login

EMAIL = "bench@example.com"
_DIAG_SITE = Path(__file__).with_name("diag_site")


@dataclass
class Counters:
    """A process's ``/proc`` counters at one moment (CPU in seconds)."""

    loop_cpu: float
    other_cpu: float
    user: float
    system: float
    minor_faults: int
    voluntary: int
    involuntary: int

    @classmethod
    def read(cls, pid: int) -> Counters:
        tick = os.sysconf("SC_CLK_TCK")
        loop = other = 0.0
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # the thread ended meanwhile
                continue
            cpu = (int(fields[11]) + int(fields[12])) / tick
            if int(task.name) == pid:
                loop += cpu
            else:
                other += cpu
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        )
        return cls(
            loop_cpu=loop,
            other_cpu=other,
            user=int(fields[11]) / tick,
            system=int(fields[12]) / tick,
            minor_faults=int(fields[7]),
            voluntary=int(status["voluntary_ctxt_switches"]),
            involuntary=int(status["nonvoluntary_ctxt_switches"]),
        )

    def per(self, before: Counters, n: int) -> dict[str, float]:
        """What happened between ``before`` and this, per one of ``n`` (CPU in microseconds)."""
        us = 1e6 / n
        return {
            "cpu_us": (self.user + self.system - before.user - before.system) * us,
            "user_us": (self.user - before.user) * us,
            "sys_us": (self.system - before.system) * us,
            "loop_us": (self.loop_cpu - before.loop_cpu) * us,
            "other_us": (self.other_cpu - before.other_cpu) * us,
            "faults": (self.minor_faults - before.minor_faults) / n,
            "vcsw": (self.voluntary - before.voluntary) / n,
            "ivcsw": (self.involuntary - before.involuntary) / n,
        }


async def new_sessions(port: int, count: int) -> list[str]:
    """The refresh tokens of ``count`` new sessions (password logins: Argon2 in the worker's
    hashing threads, so never inside a measurement)."""
    async with Connection(port) as setup:
        return [(await login(setup, EMAIL))["refresh_token"] for _ in range(count)]


async def chain_tokens(port: int, tokens: list[str], refreshes: int) -> int:
    """``refreshes`` rotations (rounded down to a multiple of ``len(tokens)``), one keep-alive
    connection chaining each session's tokens (``tokens`` is kept up to date). Returns the
    number done."""
    each = refreshes // len(tokens)

    async def chain(n: int) -> None:
        async with Connection(port) as connection:
            for _ in range(each):
                body = {"refresh_token": tokens[n]}
                status, data = await connection.request("POST", "/v1/sessions/refresh", body)
                if status != 200:
                    raise SystemExit(f"refresh failed: {status} {data[:300]!r}")
                tokens[n] = json.loads(data)["refresh_token"]

    await asyncio.gather(*(chain(n) for n in range(len(tokens))))
    return each * len(tokens)


def _wal_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in data_dir.glob("*.db-wal"))


def _threads(pid: int) -> str:
    """Each thread's CPU seconds so far (the loop's first)."""
    tick = os.sysconf("SC_CLK_TCK")
    figures = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir(), key=lambda t: int(t.name)):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        figures.append(f"{(int(fields[11]) + int(fields[12])) / tick:.2f}")
    return " ".join(figures)


def _strace(pid: int, folder: Path, connections: int) -> subprocess.Popen[bytes]:
    """``strace -c -f`` attached to the worker (every thread) until interrupted; the summary
    goes to ``folder/strace.c<connections>.<pid>.txt``. CPU figures taken meanwhile are
    inflated by the tracing: read its counts only."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"strace.c{connections}.{pid}.txt"
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # attached to every thread
    return tracer


def gc_counts(pid: int, path: Path) -> dict[str, Any] | None:
    """The worker's garbage collector counts (``--diag``), written on ``SIGUSR1``."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    for _ in range(100):
        if path.exists() and path.stat().st_size:
            time.sleep(0.05)
            return dict(json.loads(path.read_text()))
        time.sleep(0.05)
    return None


def _gc_line(before: dict[str, Any], after: dict[str, Any], n: int, seconds: float) -> str:
    runs = [(a - b) / n for a, b in zip(after["collections"], before["collections"], strict=True)]
    cpu = [
        (a - b) / n * 1e6 for a, b in zip(after["cpu_seconds"], before["cpu_seconds"], strict=True)
    ]
    tracked = after["tracked"]
    pooled = {k: round((v - before["pooled"][k]) / n, 5) for k, v in after["pooled"].items()}
    held = after["pooled"]["gate_seconds"] - before["pooled"]["gate_seconds"]
    return (
        f"   per refresh: {pooled}\n"
        f"   checkpoints held the write gate {held / seconds:.1%} of the step's {seconds:.2f} s\n"
        f"   gc per refresh: runs gen0/1/2 {runs[0]:.3f}/{runs[1]:.4f}/{runs[2]:.5f},"
        f" CPU {cpu[0]:.1f}/{cpu[1]:.1f}/{cpu[2]:.1f} us; tracked now {tracked}"
    )


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    stats = data_dir / "gc.json"
    extra = dict(item.split("=", 1) for item in args.env)
    if args.diag:
        extra["BENCH_DIAG_STATS"] = str(stats)
    if args.diag or extra:
        path = os.environ.get("PYTHONPATH", "")
        extra["PYTHONPATH"] = f"{_DIAG_SITE}{os.pathsep}{path}" if path else str(_DIAG_SITE)
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)  # start_bastion passes the environment on
    try:
        server = http.start_bastion(data_dir)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        await create_user(server.port, data_dir, EMAIL)
        await chain_tokens(server.port, await new_sessions(server.port, 4), args.warmup)
        print(f"worker {server.pid}; {args.refreshes} refreshes a step; {extra or ''}")
        for step in args.plan.split(","):
            connections = int(step)
            tokens = await new_sessions(server.port, connections)
            await asyncio.sleep(0.3)  # let the audit writer and the checkpointer settle
            gc_before = gc_counts(server.pid, stats) if args.diag else None
            tracer = _strace(server.pid, args.strace, connections) if args.strace else None
            before = Counters.read(server.pid)
            client = time.process_time()
            started = time.monotonic()
            done = await chain_tokens(server.port, tokens, args.refreshes)
            await asyncio.sleep(0.3)  # the audit writer's last batch, inside the figure
            seconds = time.monotonic() - started
            after = Counters.read(server.pid)
            if tracer is not None:
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=30)
            client = (time.process_time() - client) / done * 1e6
            figures = after.per(before, done)
            print(
                f"C={connections:>3} n={done}: server {figures['cpu_us']:6.0f} us/refresh"
                f" (user {figures['user_us']:.0f}, sys {figures['sys_us']:.0f};"
                f" loop thread {figures['loop_us']:.0f}, others {figures['other_us']:.0f});"
                f" faults {figures['faults']:.1f}, csw {figures['vcsw']:.2f}+"
                f"{figures['ivcsw']:.2f}; client {client:.0f} us"
            )
            wal = _wal_bytes(data_dir)
            print(f"   WAL files now {wal / 1024:.0f} KiB; threads {_threads(server.pid)}")
            if gc_before is not None:
                gc_after = gc_counts(server.pid, stats)
                if gc_after is not None:
                    print(_gc_line(gc_before, gc_after, done, seconds))
    finally:
        server.stop()


def run_on_load_cpu(
    run_: Callable[[argparse.Namespace, Path], Awaitable[None]], args: argparse.Namespace
) -> None:
    """``run_(args, data_dir)`` with this process on the load's CPU, in a temporary folder."""
    if http.CAN_PIN:
        os.sched_setaffinity(0, {http.LOAD_CPU})
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_(args, Path(tmp)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refreshes", type=int, default=3000, help="rotations per step")
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--plan", default="1,4,32,1,32", help="connections of each step")
    parser.add_argument("--diag", action="store_true", help="garbage collector counts")
    parser.add_argument("--strace", type=Path, help="strace -c summaries into this folder")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the worker")
    run_on_load_cpu(run, parser.parse_args())


if __name__ == "__main__":
    main()
