"""Rate limiter benchmark: decisions per second for the memory store, the Redis store and the
``limits`` library's moving window on the same Redis, in one run; then the limiter's cost per HTTP
request.

- memory: ``MemoryStore.decide`` (async, as the middleware calls it) and ``decide_now`` (the
  synchronous core), one check per decision over 1,000 keys. Target: under 5 us per decision.
- redis: ``RedisStore.decide`` and ``limits.aio.strategies.MovingWindowRateLimiter.hit`` with
  ``limits.aio.storage.RedisStorage`` (async, redis-py implementation), both on the same Redis,
  ``--concurrency`` tasks in one event loop, interleaved round by round. Target: Redis store at
  least 1.5x limits. Also printed: both at concurrency 1 (latency-bound), and the Redis store with
  coalescing off (one script call per decision, like limits).
- http (in process): a FastAPI route called through ASGI directly, bare and behind
  ``RateLimitMiddleware`` (default policy table, memory and Redis stores). ``--wrk`` also runs
  the foundation's socket benchmark shape (uvicorn pinned to CPU 0, wrk to CPU 1) on
  ``bench.ratelimit.apps``.

Usage: ``.venv/bin/python -m bench.ratelimit.run [--rounds 3] [--wrk]``. Keys live under a
random prefix and are deleted at the end; nothing else on the Redis server is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from bastion.protections.ratelimit import Check, MemoryStore, Rate, RateLimitMiddleware, RedisStore
from bastion.protections.ratelimit.wiring import build_rate_limiting
from bench.ratelimit import apps, wrk

KEYS = 1_000
LIMIT_PER_MINUTE = 100
MEMORY_TARGET_US = 5.0
REDIS_TARGET_RATIO = 1.5


def per_second(n: int, seconds: float) -> float:
    return n / seconds


async def timed(n: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Decisions per second for ``n`` calls of ``one`` spread over ``concurrency`` tasks."""
    share = n // concurrency

    async def worker(w: int) -> None:
        for i in range(share):
            await one(w * share + i)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return per_second(share * concurrency, time.perf_counter() - start)


async def bench_memory(n: int) -> dict[str, float]:
    store = MemoryStore()
    rate = Rate.per(LIMIT_PER_MINUTE, 60.0)
    checks = [(Check(f"k{i}", rate),) for i in range(KEYS)]
    decide_now = store.decide_now
    start = time.perf_counter()
    for i in range(n):
        decide_now(checks[i % KEYS])
    sync = per_second(n, time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(n):
        await store.decide(checks[i % KEYS])
    return {"memory decide_now": sync, "memory decide": per_second(n, time.perf_counter() - start)}


async def bench_redis(url: str, prefix: str, n: int, concurrency: int) -> dict[str, float]:
    rate = Rate.per(LIMIT_PER_MINUTE, 60.0)
    keys = [f"{prefix}gcra:{i}" for i in range(KEYS)]
    ours = RedisStore.from_url(url)
    plain = RedisStore.from_url(url, coalesce=False)
    storage = RedisStorage(f"async+{url}", implementation="redispy", key_prefix=f"{prefix}limits")
    moving = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerMinute(LIMIT_PER_MINUTE)
    try:
        await ours.decide([Check(keys[0], rate)])  # connect and cache the scripts
        await plain.decide([Check(keys[0], rate)])
        await moving.hit(item, "warm")
        return {
            "redis store": await timed(
                n, concurrency, lambda i: ours.decide([Check(keys[i % KEYS], rate)])
            ),
            "redis store, no coalescing": await timed(
                n, concurrency, lambda i: plain.decide([Check(keys[i % KEYS], rate)])
            ),
            "limits moving window": await timed(
                n, concurrency, lambda i: moving.hit(item, str(i % KEYS))
            ),
            "redis store, 1 task": await timed(
                n // 4, 1, lambda i: ours.decide([Check(keys[i % KEYS], rate)])
            ),
            "limits moving window, 1 task": await timed(
                n // 4, 1, lambda i: moving.hit(item, str(i % KEYS))
            ),
        }
    finally:
        await ours.aclose()
        await plain.aclose()


async def asgi_requests(app: Any, n: int, concurrency: int) -> float:
    """Microseconds per request through ``app``, called as ASGI without a server."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/bench", "raw_path": b"/bench", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    rate = await timed(n, concurrency, lambda _: app({**scope, "state": {}}, receive, send))
    if set(statuses) != {200}:
        raise SystemExit(f"unexpected statuses: {set(statuses)}")
    return 1e6 / rate


async def _trivial(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def bench_http(url: str, prefix: str, n: int, concurrency: int) -> dict[str, float]:
    os.environ.update({"BENCH_REDIS_URL": url, "BENCH_KEY_PREFIX": f"{prefix}http:"})
    memory = build_rate_limiting(apps.settings("memory")).limiter
    redis = build_rate_limiting(apps.settings("redis"))
    try:
        return {
            "fastapi, bare": await asgi_requests(apps.fastapi(), n, concurrency),
            "+ rate limit (memory)": await asgi_requests(apps.fastapi_memory(), n, concurrency),
            "+ rate limit (redis)": await asgi_requests(apps.fastapi_redis(), n, concurrency),
            "trivial ASGI app, bare": await asgi_requests(_trivial, n, concurrency),
            "+ middleware (memory)": await asgi_requests(
                RateLimitMiddleware(_trivial, limiter=memory), n, concurrency
            ),
            "+ middleware (redis)": await asgi_requests(
                RateLimitMiddleware(_trivial, limiter=redis.limiter), n, concurrency
            ),
        }
    finally:
        await redis.aclose()


async def cleanup(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch = []
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}


async def main_async(args: argparse.Namespace) -> None:
    prefix = f"bench:ratelimit:{uuid.uuid4().hex}:"
    memory, redis, http = [], [], []
    try:
        for _ in range(args.rounds):
            memory.append(await bench_memory(args.memory_n))
            redis.append(await bench_redis(args.redis_url, prefix, args.redis_n, args.concurrency))
            http.append(await bench_http(args.redis_url, prefix, args.http_n, args.concurrency))
    finally:
        await cleanup(args.redis_url, prefix)
    print(f"Rate limiter decisions, median of {args.rounds} rounds")
    print(f"{'store':<34} {'decisions/s':>12} {'us/decision':>12}")
    for name, rate in {**median_of(memory), **median_of(redis)}.items():
        print(f"{name:<34} {rate:>12,.0f} {1e6 / rate:>12.2f}")
    mem, red = median_of(memory), median_of(redis)
    us = 1e6 / mem["memory decide"]
    print(f"memory store: {us:.2f} us/decision (target < {MEMORY_TARGET_US} us)")
    ratio = red["redis store"] / red["limits moving window"]
    print(f"redis store / limits moving window, {args.concurrency} tasks: {ratio:.2f}x "
          f"(target >= {REDIS_TARGET_RATIO}x)")  # fmt: skip
    one = red["redis store, 1 task"] / red["limits moving window, 1 task"]
    print(f"redis store / limits moving window, 1 task: {one:.2f}x")
    print()
    print(
        f"HTTP in process, {args.concurrency} concurrent requests, median of {args.rounds} rounds"
    )
    med = median_of(http)
    base = 0.0
    for name, cost in med.items():
        if "bare" in name:
            base, extra = cost, ""
        else:
            extra = f"  (+{cost - base:.1f} us)"
        print(f"{name:<34} {cost:>8.1f} us/request{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--memory-n", type=int, default=200_000)
    parser.add_argument("--redis-n", type=int, default=20_000)
    parser.add_argument("--http-n", type=int, default=10_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--wrk", action="store_true", help="also run the socket benchmark (wrk)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    asyncio.run(main_async(args))
    if args.wrk:
        print()
        wrk.run(rounds=args.rounds, duration=args.duration, redis_url=args.redis_url)


if __name__ == "__main__":
    main()
