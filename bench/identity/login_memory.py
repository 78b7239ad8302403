"""CPU, page faults and resident memory of a served worker per password login, by malloc tuning.

Not a throughput benchmark: it counts. One real ``bastion serve`` worker (the lean
``python -m bastion.server`` process, SQLite, Argon2 at the defaults) pinned to CPU 0; a fixed
number of password logins from ``--clients`` concurrent keep-alive connections on CPU 1 (enough
to keep the one-thread hashing pool busy). Read from ``/proc/<pid>``: the worker's user and
system CPU time and its minor page faults over the logins, divided by the number of logins;
``VmRSS`` idle after start, after the account's registration (``--same-worker``; otherwise the
same as idle), its peak sampled every 100 ms during the logins, and again after ``--settle``
seconds without logins. The account is registered through another worker on the
same database first, so the measured one only ever serves logins (``--same-worker``: register
in it, as :mod:`bench.identity.http` does). User time moves with the machine's load (cache and
frequency sharing); system time and fault counts hardly do.

Each ``--tuning`` starts its own server with that glibc malloc environment (``serve`` keeps
an operator's own values): ``per-hash-mmap`` is the fixed 128 KiB threshold that hands every
Argon2 buffer back to the system at once (so each hash maps and faults in 19 MiB of fresh
pages; what ``serve`` set until 2026-11-28), ``reuse`` thresholds above the buffer (kept in the
heap for the next hash), ``serve`` what ``bastion serve`` sets now (the first, with transparent
huge pages for those mappings).
Usage: ``.venv/bin/python -m bench.identity.login_memory [--logins 200] [--repeat 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bastion import server
from bench.identity.http import (
    CAN_PIN,
    LOAD_CPU,
    LOGIN_EMAIL,
    PASSWORD,
    Connection,
    create_user,
    peak_rss,
    rss_mib,
    start_bastion,
)

_MALLOC = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")
TUNINGS: dict[str, dict[str, str]] = {
    "per-hash-mmap": {
        "MALLOC_MMAP_THRESHOLD_": "131072",
        "MALLOC_ARENA_MAX": "2",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0",  # `serve` would add 1 (huge pages)
    },
    # The buffer kept for the next hash: glibc's largest mmap threshold, a trim threshold above.
    "reuse": {
        "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(64 << 20),
        "MALLOC_ARENA_MAX": "2",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0",
    },
    "serve": dict(server._MALLOC_TUNING),  # noqa: SLF001 - what `bastion serve` sets
}


@dataclass
class Counters:
    user: float
    system: float
    minflt: int

    @classmethod
    def read(cls, pid: int) -> Counters:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return cls(int(fields[11]) / tick, int(fields[12]) / tick, int(fields[7]))


@dataclass
class Result:
    user_ms: float
    system_ms: float
    faults: float
    rss_idle: float
    rss_registered: float
    rss_peak: float
    rss_settled: float


async def logins(port: int, count: int, clients: int) -> None:
    body = {"email": LOGIN_EMAIL, "password": PASSWORD}
    queue = iter(range(count))

    async def client() -> None:
        async with Connection(port) as connection:
            for _ in queue:
                status, data = await connection.request("POST", "/v1/sessions", body)
                if status != 200:
                    raise SystemExit(f"login failed: {status} {data[:300]!r}")

    await asyncio.gather(*(client() for _ in range(clients)))


async def measure(tuning: dict[str, str], args: argparse.Namespace, data_dir: Path) -> Result:
    for name in _MALLOC:  # the tuning under test, nothing inherited
        os.environ.pop(name, None)
    os.environ.update(tuning)
    bastion = start_bastion(data_dir)
    if not args.same_worker:  # the account is made by another worker (same database)
        try:
            await create_user(bastion.port, data_dir, LOGIN_EMAIL)
        finally:
            bastion.stop()
        bastion = start_bastion(data_dir)
    try:
        await asyncio.sleep(1)
        rss_idle = rss_mib(bastion.pid)
        if args.same_worker:
            await create_user(bastion.port, data_dir, LOGIN_EMAIL)
            await asyncio.sleep(0.5)
        rss_registered = rss_mib(bastion.pid)  # = idle when another worker registered
        await logins(bastion.port, args.clients, args.clients)  # warm: first-use costs
        before = Counters.read(bastion.pid)
        async with peak_rss(bastion.pid) as peak:
            await logins(bastion.port, args.logins, args.clients)
        after = Counters.read(bastion.pid)
        await asyncio.sleep(args.settle)
        n = args.logins
        return Result(
            user_ms=(after.user - before.user) * 1000 / n,
            system_ms=(after.system - before.system) * 1000 / n,
            faults=(after.minflt - before.minflt) / n,
            rss_idle=rss_idle,
            rss_registered=rss_registered,
            rss_peak=peak[0],
            rss_settled=rss_mib(bastion.pid),
        )
    finally:
        bastion.stop()
        for name in _MALLOC:
            os.environ.pop(name, None)


async def run(args: argparse.Namespace) -> None:
    print(
        f"{'tuning':<14} user ms  sys ms  faults/login"
        "  RSS idle / after registration / peak under logins / settled MiB"
    )
    for name in args.tuning:
        results = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(await measure(TUNINGS[name], args, Path(tmp)))
        for r in results:
            print(
                f"{name:<14} {r.user_ms:7.2f} {r.system_ms:7.2f} {r.faults:13.0f}"
                f"  {r.rss_idle:.1f} / {r.rss_registered:.1f} / {r.rss_peak:.1f}"
                f" / {r.rss_settled:.1f}"
            )
        total = statistics.median(r.user_ms + r.system_ms for r in results)
        print(f"{name:<14} median user+sys per login: {total:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4, help="concurrent login connections")
    parser.add_argument("--repeat", type=int, default=2, help="servers started per tuning")
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds before last RSS")
    parser.add_argument(
        "--same-worker",
        action="store_true",
        help="register the account in the measured worker (as bench.identity.http does: the"
        " password policy's zxcvbn dictionaries, ~12 MiB, then count in its memory)",
    )
    parser.add_argument("--tuning", nargs="+", choices=sorted(TUNINGS), default=sorted(TUNINGS))
    args = parser.parse_args()
    if CAN_PIN:
        os.sched_setaffinity(0, {LOAD_CPU})  # the clients stay off the server's CPU
    else:
        print("warning: one CPU or no taskset: server and clients share the CPU", file=sys.stderr)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
