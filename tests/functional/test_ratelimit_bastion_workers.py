"""Two real Bastion workers (`bastion serve --workers 2`) share one budget through Redis.

1,000 concurrent requests against a budget of 100 with no refill: at most 100 are allowed in
total (per-worker memory limits would allow up to 200), and every refusal is a proper 429.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from tests.common.server import LiveServer, start_server, stop_server

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
#: Startup bound for a two-worker server: the whole parallel suite loads the two cores, and a
#: run was seen to exceed the helper's default 120 s (a bound, not a performance assertion).
WORKERS_STARTUP_SECONDS = 300
#: How long the control test keeps sending rounds of requests until both workers spent their
#: budgets: the first worker to finish importing can take every connection while the second
#: one is still starting (seen in CI), so one burst is not enough on a loaded machine.
SPEND_SECONDS = 240
ROUND = 2 * BUDGET
#: The remaining quota an answer reports (``RateLimit: "api-ip";r=99;t=...``).
_REMAINING = re.compile(r"\br=(\d+)")


@dataclass
class Answers:
    statuses: Counter[int] = field(default_factory=Counter)
    #: How many allowed answers reported each remaining quota. Within a worker decisions are
    #: atomic (one event loop), so each budget counts down BUDGET - 1, ..., 0 once: a value
    #: reported twice comes from a second, independent budget.
    remaining: Counter[int] = field(default_factory=Counter)


async def _fire(
    url: str, *, keep_alive: bool = True, requests: int = REQUESTS, into: Answers | None = None
) -> Answers:
    # Idle connections are dropped well before the server's 5 s keep-alive timeout: a request
    # sent on a connection the server is closing fails with "Server disconnected" (seen on a
    # loaded machine), which says nothing about rate limiting. Without keep-alive every request
    # is a new connection, accepted by whichever worker is ready at that moment.
    answers = Answers() if into is None else into
    limits = httpx.Limits(
        max_connections=CONCURRENCY,
        max_keepalive_connections=None if keep_alive else 0,
        keepalive_expiry=1.0,
    )
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one() -> None:
            async with gate:
                try:
                    response = await client.get("/healthz")
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    answers.statuses[LOST] += 1
                    return
            answers.statuses[response.status_code] += 1
            if response.status_code == 200:
                found = _REMAINING.search(response.headers.get("RateLimit", ""))
                assert found, response.headers
                answers.remaining[int(found[1])] += 1

        await asyncio.gather(*(one() for _ in range(requests)))
    return answers


def _start_two_workers(tmp_path: Path, ratelimit: Mapping[str, object]) -> LiveServer:
    return start_server(
        tmp_path,
        "--workers",
        "2",
        startup_seconds=WORKERS_STARTUP_SECONDS,
        BASTION_RATELIMIT=json.dumps(ratelimit),
    )


async def test_two_bastion_workers_hold_one_budget(tmp_path: Path, redis_url: str) -> None:
    prefix = f"bt-{uuid.uuid4().hex[:12]}:"
    ratelimit = {
        "storage": "redis",
        "redis_url": redis_url,
        "key_prefix": prefix,
        "policies": {"api-ip": {"limit": BUDGET, "window_seconds": NO_REFILL_WINDOW}},
    }
    server = _start_two_workers(tmp_path, ratelimit)
    try:
        statuses = (await _fire(server.url)).statuses
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
    """The control: with per-worker memory budgets the same client gets more than the budget,
    which shows both workers took requests (so the shared-budget test above is meaningful).

    Each request on its own connection: with 100 kept-alive connections opened at once, one
    worker woken first could accept them all on a loaded machine (seen in CI). Even so, the
    first worker to start could answer a whole burst while the second was still importing
    (seen in CI), so rounds of requests go on until both budgets are spent: the worker that
    spent its own answers every further request at once with 429, and the other one takes its
    share as soon as it accepts connections. A shared budget never allows more than BUDGET,
    however long this goes on.
    """
    ratelimit = {"policies": {"api-ip": {"limit": BUDGET, "window_seconds": NO_REFILL_WINDOW}}}
    server = _start_two_workers(tmp_path, ratelimit)
    answers = Answers()
    try:
        deadline = time.monotonic() + SPEND_SECONDS
        while time.monotonic() < deadline:
            await _fire(server.url, keep_alive=False, requests=ROUND, into=answers)
            if answers.statuses[200] + answers.statuses[LOST] >= 2 * BUDGET:
                break
    finally:
        stop_server(server)
    statuses, remaining = answers.statuses, answers.remaining
    assert statuses[LOST] <= MAX_LOST, statuses
    assert set(statuses) <= {200, 429, LOST}, statuses
    assert statuses[429] > 0, statuses  # the budgets are enforced, not absent
    assert BUDGET < statuses[200] <= 2 * BUDGET, statuses
    # Two independent countdowns from BUDGET - 1: each value reported at most twice, never by a
    # third budget (a shared budget would report each value once).
    assert max(remaining.values()) == 2, remaining
    assert set(remaining) <= set(range(BUDGET)), remaining
    if not statuses[LOST]:
        assert remaining[BUDGET - 1] == 2, remaining  # each worker's first allowed answer
    if statuses[200] == 2 * BUDGET:
        assert remaining == Counter(dict.fromkeys(range(BUDGET), 2)), remaining
