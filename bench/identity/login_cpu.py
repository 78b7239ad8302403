"""Where a served password login's CPU goes, per thread, against one hash timed alone.

Not a throughput benchmark: it counts. One real ``bastion serve`` worker pinned to CPU 0 (as
:mod:`bench.identity.http` starts it), the account registered by another worker first, then
``--logins`` password logins from ``--clients`` keep-alive connections on CPU 1. Around the
logins, for every thread of the worker, from ``/proc/<pid>/task/<tid>/``:

* ``schedstat``: nanoseconds on a CPU (the scheduler's own accounting, not the 10 ms ticks of
  ``stat``), nanoseconds spent runnable but waiting, and timeslices;
* ``stat``: minor page faults; ``status``: voluntary and involuntary context switches.

Threads are sorted into the event loop (the main thread), the hashing thread (the busiest
other thread) and the rest (SQLite checkpointer, audit writer...). The worker's
``AnonHugePages`` (``smaps_rollup``) is sampled during the logins.

The reference, **one hash alone**, is timed the same way in a fresh process pinned to the same
CPU with ``bastion serve``'s malloc settings: ``Argon2Hasher.verify`` of a stored hash at the
defaults through a ``HashingPool`` (the server's path: pool thread, reusable buffer), the pool
thread's ``schedstat`` over ``--hashes`` verifications; and ``Argon2Hasher.hash`` on the main
thread timed by ``time.thread_time`` (what :func:`bench.identity.http.time_one_hash` does).
``--polluter`` adds a Python thread on the same CPU in the reference process that walks
``--polluter-mib`` of memory between hashes (does cache pollution slow the hash down?).

Usage: ``.venv/bin/python -m bench.identity.login_cpu [--logins 300] [--clients 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bastion import server
from bench.identity import http
from bench.identity.http import (
    CAN_PIN,
    LOAD_CPU,
    LOGIN_EMAIL,
    PASSWORD,
    SERVER_CPU,
    create_user,
)
from bench.identity.login_memory import logins


@dataclass(frozen=True)
class ThreadCounters:
    run_ns: int
    wait_ns: int
    slices: int
    minflt: int
    voluntary: int
    involuntary: int
    user_ticks: int
    system_ticks: int

    @classmethod
    def read(cls, task: Path) -> ThreadCounters:
        run, wait, slices = (int(x) for x in (task / "schedstat").read_text().split())
        stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        switches = {}
        for line in (task / "status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.endswith("ctxt_switches"):
                switches[name] = int(value)
        return cls(
            run,
            wait,
            slices,
            int(stat[7]),
            switches["voluntary_ctxt_switches"],
            switches["nonvoluntary_ctxt_switches"],
            int(stat[11]),
            int(stat[12]),
        )

    def __sub__(self, other: ThreadCounters) -> ThreadCounters:
        return ThreadCounters(
            self.run_ns - other.run_ns,
            self.wait_ns - other.wait_ns,
            self.slices - other.slices,
            self.minflt - other.minflt,
            self.voluntary - other.voluntary,
            self.involuntary - other.involuntary,
            self.user_ticks - other.user_ticks,
            self.system_ticks - other.system_ticks,
        )

    def __add__(self, other: ThreadCounters) -> ThreadCounters:
        return self - ThreadCounters(*(-v for v in vars(other).values()))


ZERO = ThreadCounters(0, 0, 0, 0, 0, 0, 0, 0)
_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def threads(pid: int) -> dict[int, ThreadCounters]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = ThreadCounters.read(task)
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
    return out


def deltas(pid: int, before: dict[int, ThreadCounters]) -> dict[int, ThreadCounters]:
    return {tid: now - before.get(tid, ZERO) for tid, now in threads(pid).items()}


def anon_huge_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


def split(pid: int, per_thread: dict[int, ThreadCounters]) -> dict[str, ThreadCounters]:
    """Event loop (the main thread), hashing thread (busiest other), the rest summed."""
    loop = per_thread.pop(pid, ZERO)
    others = sorted(per_thread.values(), key=lambda c: c.run_ns, reverse=True)
    rest = ZERO
    for counters in others[1:]:
        rest = rest + counters
    return {"event loop": loop, "hash thread": others[0] if others else ZERO, "other threads": rest}


def show(title: str, parts: dict[str, ThreadCounters], n: int) -> None:
    print(f"\n{title} (per item, {n} items)")
    print(
        f"{'':<16}{'CPU ms':>9}{'user/sys ms':>14}{'waiting ms':>12}{'slices':>8}{'minflt':>8}"
        f"{'vol cs':>8}{'invol cs':>9}"
    )
    total = ZERO
    for name, c in parts.items():
        total = total + c
        _row(name, c, n)
    _row("process", total, n)


def _row(name: str, c: ThreadCounters, n: int) -> None:
    print(
        f"{name:<16}{c.run_ns / n / 1e6:9.3f}"
        f"{c.user_ticks * _TICK_MS / n:8.2f}/{c.system_ticks * _TICK_MS / n:5.2f}"
        f"{c.wait_ns / n / 1e6:12.3f}{c.slices / n:8.2f}"
        f"{c.minflt / n:8.2f}{c.voluntary / n:8.2f}{c.involuntary / n:9.2f}"
    )


# -- the served worker ---------------------------------------------------------------------------
def start_bastion(data_dir: Path, args: argparse.Namespace) -> http.Server:
    """As :func:`bench.identity.http.start_bastion`; ``--hash-memory-kib`` (below OWASP's
    minimum only for this diagnostic: how much the hash's size changes the rest of a login)
    and ``--hand-over-batch`` (the hashing pool's batches of outcomes)."""
    passwords: dict[str, object] = {}
    if args.hash_memory_kib:
        passwords |= {
            "hash_memory_kib": args.hash_memory_kib,
            "hash_time_cost": args.hash_time_cost,
            "allow_insecure_hash_parameters": True,
        }
    if args.hand_over_batch:
        passwords["hash_hand_over_batch"] = args.hand_over_batch
    if not passwords:
        return http.start_bastion(data_dir)
    real_start = http._start  # noqa: SLF001 - the same start, one more setting

    def start(name: str, command: list[str], data_dir: Path, env: dict[str, str]) -> http.Server:
        return real_start(
            name, command, data_dir, {**env, "BASTION_PASSWORDS": json.dumps(passwords)}
        )

    http._start = start  # noqa: SLF001
    try:
        return http.start_bastion(data_dir)
    finally:
        http._start = real_start  # noqa: SLF001


async def served(args: argparse.Namespace, data_dir: Path) -> None:
    bastion = start_bastion(data_dir, args)
    try:
        await create_user(bastion.port, data_dir, LOGIN_EMAIL)
    finally:
        bastion.stop()
    bastion = start_bastion(data_dir, args)
    try:
        await asyncio.sleep(1)
        await logins(bastion.port, args.warmup, args.clients)
        before = threads(bastion.pid)
        huge: list[int] = []

        async def sample() -> None:
            while True:
                huge.append(anon_huge_kib(bastion.pid))
                await asyncio.sleep(0.2)

        sampler = asyncio.create_task(sample())
        await logins(bastion.port, args.logins, args.clients)
        sampler.cancel()
        parts = split(bastion.pid, deltas(bastion.pid, before))
        setup = " ".join(args.env)
        if args.hash_memory_kib:
            setup += f" Argon2 m={args.hash_memory_kib} KiB t={args.hash_time_cost}"
        if args.hand_over_batch:
            setup += f" hand-over batch {args.hand_over_batch}"
        show(f"served worker, per login {setup}".rstrip(), parts, args.logins)
        print(f"AnonHugePages during the logins: {min(huge)}-{max(huge)} KiB")
    finally:
        bastion.stop()


# -- one hash alone --------------------------------------------------------------------------------
_REFERENCE = r"""
import asyncio, json, os, sys, threading, time
from bastion.identity.passwords import Argon2Hasher, PasswordSettings
from bastion.identity.passwords.pool import HashingPool
sys.path.insert(0, os.getcwd())
from bench.identity.login_cpu import threads, split

hashes, polluter_mib, password = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
hasher = Argon2Hasher(PasswordSettings())
stored = hasher.hash(password)
pid = os.getpid()
stop = threading.Event()
go = threading.Event()

def pollute():
    # Between hashes: Python walking polluter_mib of objects (the event loop's role).
    data = [bytearray(1024) for _ in range(polluter_mib * 1024)]
    while not stop.is_set():
        go.wait()
        go.clear()
        for block in data:
            block[0] ^= 1

if polluter_mib:
    threading.Thread(target=pollute, daemon=True).start()

async def main():
    pool = HashingPool()
    for _ in range(3):
        await pool.run(hasher.verify, stored, password)
    before = threads(pid)
    for _ in range(hashes):
        result = await pool.run(hasher.verify, stored, password)
        assert result.ok
        if polluter_mib:
            go.set()
            await asyncio.sleep(0.01)
    after = threads(pid)
    stop.set()
    go.set()
    pool.shutdown()
    return before, after

before, after = asyncio.run(main())
per = {tid: vars(now - before[tid]) for tid, now in after.items() if tid in before}
cpu = []
for _ in range(hashes):
    start = time.thread_time_ns()
    hasher.hash(password)
    cpu.append(time.thread_time_ns() - start)
print(json.dumps({"pid": pid, "threads": per, "main_hash_ns": sorted(cpu)[len(cpu) // 2]}))
"""


def reference(args: argparse.Namespace, polluter_mib: int) -> None:
    env = dict(os.environ)
    env.update(dict(server._MALLOC_TUNING))  # noqa: SLF001 - what `bastion serve` sets
    command = [sys.executable, "-c", _REFERENCE, str(args.hashes), str(polluter_mib), PASSWORD]
    if CAN_PIN:
        command = ["taskset", "-c", str(SERVER_CPU), *command]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    data = json.loads(done.stdout)
    per = {int(tid): ThreadCounters(**c) for tid, c in data["threads"].items()}
    parts = split(data["pid"], per)
    label = "one hash alone: HashingPool verify, serve's malloc settings"
    if polluter_mib:
        label += f", {polluter_mib} MiB walked by another thread between hashes"
    show(label, parts, args.hashes)
    print(
        "Argon2Hasher.hash on the main thread, thread_time median:"
        f" {data['main_hash_ns'] / 1e6:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--clients", type=int, default=8, help="as bench.identity.http")
    parser.add_argument("--hashes", type=int, default=100)
    parser.add_argument("--polluter-mib", type=int, default=0)
    parser.add_argument("--only", choices=("served", "reference"))
    parser.add_argument(
        "--hash-memory-kib",
        type=int,
        default=0,
        help="served worker's Argon2 memory (default: the defaults, 19 MiB); a diagnostic of"
        " how the hash's size changes the cost of the rest of a login",
    )
    parser.add_argument("--hash-time-cost", type=int, default=2)
    parser.add_argument(
        "--hand-over-batch",
        type=int,
        default=0,
        help="the served worker's hash_hand_over_batch (default: the setting's default)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set in the served worker's environment (e.g. a glibc malloc setting: `bastion"
        " serve` keeps an operator's own values)",
    )
    args = parser.parse_args()
    for setting in args.env:
        name, _, value = setting.partition("=")
        os.environ[name] = value
    if args.only != "served":
        reference(args, 0)
        if args.polluter_mib:
            reference(args, args.polluter_mib)
    if args.only != "reference":
        if CAN_PIN:
            os.sched_setaffinity(0, {LOAD_CPU})
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(served(args, Path(tmp)))


if __name__ == "__main__":
    main()
