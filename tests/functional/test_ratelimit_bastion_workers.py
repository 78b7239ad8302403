"""Two real Bastion workers (`bastion serve --workers 2`) share one budget through Redis.

1,000 concurrent requests against a budget of 100 with no refill: at most 100 are allowed in
total (per-worker memory limits would allow up to 200), and every refusal is a proper 429.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from tests.common.server import start_server, stop_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BUDGET = 100
REQUESTS = 1_000
CONCURRENCY = 100
NO_REFILL_WINDOW = 365 * 86_400
#: A request whose connection broke before its answer (key ``LOST``): on a machine loaded by
#: the whole parallel suite a keep-alive connection was seen reset once in a few runs. The
#: server may or may not have counted it, so each lost request widens the allowed count by
#: one, and more than a handful fails the test.
LOST = 0
MAX_LOST = REQUESTS // 100


async def _fire(url: str, *, keep_alive: bool = True) -> Counter[int]:
    # Idle connections are dropped well before the server's 5 s keep-alive timeout: a request
    # sent on a connection the server is closing fails with "Server disconnected" (seen on a
    # loaded machine), which says nothing about rate limiting. Without keep-alive every request
    # is a new connection, accepted by whichever worker is ready at that moment.
    limits = httpx.Limits(
        max_connections=CONCURRENCY,
        max_keepalive_connections=None if keep_alive else 0,
        keepalive_expiry=1.0,
    )
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one() -> int:
            async with gate:
                try:
                    return (await client.get("/healthz")).status_code
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    return LOST

        return Counter(await asyncio.gather(*(one() for _ in range(REQUESTS))))


async def test_two_bastion_workers_hold_one_budget(tmp_path: Path, redis_url: str) -> None:
    prefix = f"bt-{uuid.uuid4().hex[:12]}:"
    ratelimit = {
        "storage": "redis",
        "redis_url": redis_url,
        "key_prefix": prefix,
        "policies": {"api-ip": {"limit": BUDGET, "window_seconds": NO_REFILL_WINDOW}},
    }
    server = start_server(tmp_path, "--workers", "2", BASTION_RATELIMIT=json.dumps(ratelimit))
    try:
        statuses = await _fire(server.url)
    finally:
        stop_server(server)
        redis = Redis.from_url(redis_url)
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    assert set(statuses) <= {200, 429, LOST}, statuses
    assert statuses[LOST] <= MAX_LOST, statuses
    assert statuses[200] <= BUDGET
    # Both workers answered from one shared budget: it was used up, not doubled (a lost answer
    # may have been an allowed request).
    assert BUDGET - statuses[LOST] <= statuses[200] <= BUDGET, statuses
    assert statuses[200] + statuses[429] + statuses[LOST] == REQUESTS


async def test_without_redis_each_worker_has_its_own_budget(tmp_path: Path) -> None:
    """The control: with per-worker memory budgets the same load gets more than the budget,
    which shows both workers took requests (so the shared-budget test above is meaningful).
    Each request on its own connection: with 100 kept-alive connections opened at once, one
    worker woken first could accept them all on a loaded machine (seen in CI), and the other
    would then never answer anything of this load."""
    ratelimit = {"policies": {"api-ip": {"limit": BUDGET, "window_seconds": NO_REFILL_WINDOW}}}
    server = start_server(tmp_path, "--workers", "2", BASTION_RATELIMIT=json.dumps(ratelimit))
    try:
        statuses = await _fire(server.url, keep_alive=False)
    finally:
        stop_server(server)
    assert statuses[LOST] <= MAX_LOST, statuses
    assert BUDGET < statuses[200] <= 2 * BUDGET, statuses
