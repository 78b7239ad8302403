"""Password hashing benchmark: one Argon2id hash at the default parameters, the throughput bound
it implies, and the throughput actually reached through :class:`HashingPool`.

The bound is ``cores / seconds per hash``: Argon2 is CPU- and memory-bound and argon2-cffi
releases the GIL, so a pool with one worker per core should get close to it (target >= 0.9).
A much lower ratio means hashing is serialised somewhere (the GIL, the event loop, the pool).
As a control, the same load also runs on bare threads (no pool, no event loop): if those miss
the bound too, the machine (shared cores, memory bandwidth, other load) is the limit, not us.

Each round measures all three back to back, so background load affects them alike; medians of
the rounds are reported. Usage:
``.venv/bin/python -m bench.identity.passwords [--seconds 4] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bastion.identity.passwords import Argon2Hasher, HashingPool, PasswordSettings

TARGET_RATIO = 0.9
PASSWORD = "correct horse battery staple"  # noqa: S105 - benchmark input, not a secret


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def time_one_hash(hasher: Argon2Hasher, samples: int) -> float:
    """Median seconds for one hash, measured sequentially on this thread."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        hasher.hash(PASSWORD)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def thread_throughput(hasher: Argon2Hasher, workers: int, seconds: float) -> float:
    """Control: hashes per second on ``workers`` bare threads, each hashing in a loop."""
    counts = [0] * workers
    deadline = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < deadline:
            hasher.hash(PASSWORD)
            counts[i] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - start)


async def pool_throughput(hasher: Argon2Hasher, workers: int, seconds: float) -> float:
    """Hashes per second through a pool of ``workers``, kept saturated by 2x as many clients."""
    clients = 2 * workers
    done = 0
    async with HashingPool(max_concurrency=workers, max_waiting=clients) as pool:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await pool.run(hasher.hash, PASSWORD)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--samples", type=int, default=15, help="sequential hashes per round")
    args = parser.parse_args()

    settings = PasswordSettings()
    hasher = Argon2Hasher(settings)
    cores = _cores()
    with ThreadPoolExecutor(1) as warm:  # first-use costs (allocator, thread start) out of the way
        warm.submit(hasher.hash, PASSWORD).result()
    per_hash, bare, pooled = [], [], []
    for _ in range(args.rounds):
        per_hash.append(time_one_hash(hasher, args.samples))
        bare.append(thread_throughput(hasher, cores, args.seconds))
        pooled.append(asyncio.run(pool_throughput(hasher, cores, args.seconds)))
    hash_s = statistics.median(per_hash)
    bound = cores / hash_s
    rate, control = statistics.median(pooled), statistics.median(bare)

    def rounds(values: list[float]) -> str:
        return ", ".join(f"{v:.1f}" for v in values)

    print(
        f"Argon2id m={settings.hash_memory_kib} KiB t={settings.hash_time_cost} "
        f"p={settings.hash_parallelism} (defaults), {cores} cores, {args.rounds} rounds"
    )
    per_hash_ms = rounds([t * 1000 for t in per_hash])
    print(f"one hash (median):             {hash_s * 1000:.1f} ms  ({per_hash_ms} ms)")
    print(f"bound = cores / hash time:     {bound:.1f} hashes/s")
    print(f"HashingPool, {cores} workers:      {rate:.1f} hashes/s  ({rounds(pooled)})")
    print(f"bare threads, {cores} (control):   {control:.1f} hashes/s  ({rounds(bare)})")
    print(f"ratio pool / bound:            {rate / bound:.2f}  (target >= {TARGET_RATIO})")
    print(f"ratio bare threads / bound:    {control / bound:.2f}  (what this machine allows)")
    print(f"ratio pool / bare threads:     {rate / control:.2f}  (the pool's own overhead)")
    print(f"peak hashing memory:           ~{cores * settings.hash_memory_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
