"""Password hashing benchmark: one Argon2id hash at the default parameters, the throughput bound
it implies, and the throughput actually reached through :class:`HashingPool`.

The bound is ``cores / seconds per hash`` (issue 4): Argon2 is CPU- and memory-bound and
argon2-cffi releases the GIL, so a pool with one worker per core should get close to it (target
>= 0.9). As a control, the same load also runs on bare threads (no pool, no event loop).

On a shared machine that bound is not what the benchmark can reach: the one-hash time is taken
by one thread, which the scheduler lets run on a whole core, while the throughput runs need
*every* core, and other processes take their share of them. So each run also reads the CPU
time of this process and of the whole machine (``/proc/stat``, the CPUs of our affinity set):
the CPU time other processes used is not available to us, and the **load-adjusted bound** is
``(cores x seconds - CPU seconds used by others) / CPU seconds per hash`` (the per-hash CPU
time, ``time.thread_time``, measured sequentially). The ratio to it tells whether the pool
turns the CPU it gets into hashes; the plain ratio tells what the machine allowed at the time.

Each round measures the one-hash time, the bare threads and the pool back to back; ratios are
computed per round (against that round's bound) and their medians reported, with the load
average before and after. ``--quiet-below L`` waits (at most ``--wait`` seconds) for the
1-minute load average to drop below ``L`` before starting. Usage:
``.venv/bin/python -m bench.identity.passwords [--seconds 4] [--rounds 5] [--quiet-below 1.5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bastion.identity.passwords import Argon2Hasher, HashingPool, PasswordSettings
from bastion.identity.passwords.pool import usable_cores

TARGET_RATIO = 0.9
PASSWORD = "correct horse battery staple"  # noqa: S105 - benchmark input, not a secret
_TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds(cpus: set[int]) -> float:
    """CPU seconds the CPUs in ``cpus`` spent busy since boot (everything but idle and iowait;
    guest time is already inside user time)."""
    busy = 0
    with Path("/proc/stat").open(encoding="ascii") as stat:
        for line in stat:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            if int(name[3:]) in cpus:
                values = [int(v) for v in fields[:8]]
                busy += sum(values) - values[3] - values[4]
    return busy / _TICK


@dataclass(frozen=True)
class Run:
    """One throughput run: hashes done, and the CPU time that went where."""

    hashes: int
    wall: float
    own_cpu: float  # this process (every thread)
    machine_cpu: float  # the CPUs of our affinity set, every process

    @property
    def rate(self) -> float:
        return self.hashes / self.wall

    def others_cpu(self) -> float:
        return max(self.machine_cpu - self.own_cpu, 0.0)

    def adjusted_bound(self, cores: int, cpu_per_hash: float) -> float:
        """Hashes/s if all the CPU time other processes left us went into hashes."""
        available = max(cores * self.wall - self.others_cpu(), 1e-9)
        return available / cpu_per_hash / self.wall


def measured(work: Callable[[], int], cpus: set[int]) -> Run:
    own, machine = time.process_time(), machine_busy_seconds(cpus)
    start = time.perf_counter()
    hashes = work()
    wall = time.perf_counter() - start
    return Run(hashes, wall, time.process_time() - own, machine_busy_seconds(cpus) - machine)


def time_one_hash(hasher: Argon2Hasher, samples: int) -> tuple[float, float]:
    """Median wall seconds and CPU seconds of one hash, measured sequentially."""
    walls, cpus = [], []
    for _ in range(samples):
        start, cpu = time.perf_counter(), time.thread_time()
        hasher.hash(PASSWORD)
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls), statistics.median(cpus)


def thread_hashes(hasher: Argon2Hasher, workers: int, seconds: float) -> int:
    """Control: hashes done by ``workers`` bare threads, each hashing in a loop."""
    counts = [0] * workers
    deadline = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < deadline:
            hasher.hash(PASSWORD)
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


async def pool_hashes(hasher: Argon2Hasher, workers: int, seconds: float) -> int:
    """Hashes done through a pool of ``workers``, kept saturated by 2x as many clients."""
    clients = 2 * workers
    done = 0
    async with HashingPool(max_concurrency=workers, max_waiting=clients) as pool:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await pool.run(hasher.hash, PASSWORD)
                done += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return done


def wait_for_quiet(below: float, at_most: float) -> None:
    deadline = time.monotonic() + at_most
    while os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(5)


@dataclass
class Round:
    hash_wall: float
    hash_cpu: float
    bare: Run
    pool: Run


def one_round(hasher: Argon2Hasher, cores: int, cpus: set[int], args: argparse.Namespace) -> Round:
    hash_wall, hash_cpu = time_one_hash(hasher, args.samples)
    bare = measured(lambda: thread_hashes(hasher, cores, args.seconds), cpus)
    pool = measured(lambda: asyncio.run(pool_hashes(hasher, cores, args.seconds)), cpus)
    return Round(hash_wall, hash_cpu, bare, pool)


def _list(values: list[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


def report(rounds: list[Round], cores: int, settings: PasswordSettings, load: str) -> None:
    med = statistics.median
    hash_ms = [r.hash_wall * 1000 for r in rounds]
    cpu_ms = [r.hash_cpu * 1000 for r in rounds]
    bound = [cores / r.hash_wall for r in rounds]
    pool = [r.pool.rate for r in rounds]
    bare = [r.bare.rate for r in rounds]
    pool_ratio = [r.pool.rate * r.hash_wall / cores for r in rounds]
    bare_ratio = [r.bare.rate * r.hash_wall / cores for r in rounds]
    pool_adj = [r.pool.rate / r.pool.adjusted_bound(cores, r.hash_cpu) for r in rounds]
    bare_adj = [r.bare.rate / r.bare.adjusted_bound(cores, r.hash_cpu) for r in rounds]
    others = [r.pool.others_cpu() / (cores * r.pool.wall) for r in rounds]
    pool_cpu = [r.pool.own_cpu / r.pool.hashes * 1000 for r in rounds]
    bare_cpu = [r.bare.own_cpu / r.bare.hashes * 1000 for r in rounds]
    print(
        f"Argon2id m={settings.hash_memory_kib} KiB t={settings.hash_time_cost} "
        f"p={settings.hash_parallelism} (defaults), {cores} cores, {len(rounds)} rounds; "
        f"medians, every round in brackets. Load average {load}."
    )
    rows = [
        ("one hash, wall", f"{med(hash_ms):.1f} ms  ({_list(hash_ms, 1)})"),
        ("one hash, CPU", f"{med(cpu_ms):.1f} ms  ({_list(cpu_ms, 1)})"),
        ("bound = cores / hash time", f"{med(bound):.1f} hashes/s  ({_list(bound, 1)})"),
        (f"HashingPool, {cores} workers", f"{med(pool):.1f} hashes/s  ({_list(pool, 1)})"),
        (f"bare threads, {cores} (control)", f"{med(bare):.1f} hashes/s  ({_list(bare, 1)})"),
        ("CPU per hash, pool runs", f"{med(pool_cpu):.1f} ms  ({_list(pool_cpu, 1)})"),
        ("CPU per hash, bare runs", f"{med(bare_cpu):.1f} ms  ({_list(bare_cpu, 1)})"),
        (
            "CPU taken by other processes",
            f"{med(others):.0%} of {cores} cores during the pool runs",
        ),
        ("pool / bound", f"{med(pool_ratio):.2f}  ({_list(pool_ratio)})  target >= {TARGET_RATIO}"),
        ("bare threads / bound", f"{med(bare_ratio):.2f}  ({_list(bare_ratio)})"),
        ("pool / load-adjusted bound", f"{med(pool_adj):.2f}  ({_list(pool_adj)})"),
        ("bare / load-adjusted bound", f"{med(bare_adj):.2f}  ({_list(bare_adj)})"),
        ("pool / bare threads", f"{med(pool) / med(bare):.2f}  (the pool's own overhead)"),
        ("peak hashing memory", f"~{cores * settings.hash_memory_kib / 1024:.0f} MiB"),
    ]
    for name, value in rows:
        print(f"{name + ':':<32} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; medians are reported")
    parser.add_argument("--samples", type=int, default=15, help="sequential hashes per round")
    parser.add_argument("--quiet-below", type=float, default=None, help="wait for this load")
    parser.add_argument("--wait", type=float, default=300.0, help="at most this many seconds")
    args = parser.parse_args()

    if args.quiet_below is not None:
        wait_for_quiet(args.quiet_below, args.wait)
    before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    settings = PasswordSettings()
    hasher = Argon2Hasher(settings)
    cpus = os.sched_getaffinity(0)
    cores = usable_cores()
    with ThreadPoolExecutor(1) as warm:  # first-use costs (allocator, thread start) out of the way
        warm.submit(hasher.hash, PASSWORD).result()
    rounds = [one_round(hasher, cores, cpus, args) for _ in range(args.rounds)]
    after = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report(rounds, cores, settings, f"{before} before, {after} after")


if __name__ == "__main__":
    main()
