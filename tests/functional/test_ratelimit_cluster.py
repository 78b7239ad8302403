"""Correctness across processes: two workers sharing Redis hold one budget together.

Two uvicorn processes each serve a minimal Starlette app with :class:`RateLimitMiddleware` on the
same Redis key space; 1,000 concurrent requests, split across both, meet a budget of 100 with no
refill. Per-worker (in-memory) limits would allow up to 200; the atomic Redis script allows 100.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from tests.common.server import STARTUP_SECONDS, free_port, kill_process_group

from bastion.protections.ratelimit import (
    FailoverStore,
    Policy,
    PolicyTable,
    RateLimiter,
    RateLimitMiddleware,
    RedisStore,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BUDGET = 100
REQUESTS = 1_000
#: In flight at once, over both workers: concurrent, but bounded (no client-side meltdown).
CONCURRENCY = 100
#: One unit per year: no refill while the test runs.
NO_REFILL_WINDOW = 365 * 86_400.0
REPO = Path(__file__).resolve().parents[2]
ENV_URL, ENV_PREFIX = "RATELIMIT_TEST_REDIS_URL", "RATELIMIT_TEST_PREFIX"


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(os.getpid()))


def create_app() -> Starlette:
    """The worker app (``uvicorn --factory``): one fail-closed budget for every client IP."""
    budget = Policy.per("budget", BUDGET, NO_REFILL_WINDOW)
    limiter = RateLimiter(
        FailoverStore(RedisStore.from_url(os.environ[ENV_URL])),
        PolicyTable([budget], exempt_paths=["/ready"]),
        key_prefix=os.environ[ENV_PREFIX],
    )
    return Starlette(
        routes=[Route("/", _ok), Route("/ready", _ok)],
        middleware=[Middleware(RateLimitMiddleware, limiter=limiter)],
    )


def _start_worker(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", f"{__name__}:create_app", "--factory",
        "--app-dir", str(REPO), "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603 - our own test app
            command,
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"worker exited early:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"worker did not start:\n{log.read_text(errors='replace')}")


@pytest.fixture
def prefix() -> str:
    return f"bastion-test:{uuid.uuid4().hex}:"


@pytest.fixture
def workers(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[list[str]]:
    env = {**os.environ, ENV_URL: redis_url, ENV_PREFIX: prefix}
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for _ in range(2):
            port = free_port()
            log = tmp_path / f"worker-{port}.log"
            started.append((f"http://127.0.0.1:{port}", _start_worker(port, env, log), log))
        for url, process, log in started:
            _wait_ready(url, process, log)
        yield [url for url, _, _ in started]
    finally:
        for _, process, _ in started:
            kill_process_group(process)


@pytest.fixture
async def cleanup(redis_url: str, prefix: str) -> AsyncIterator[None]:
    yield
    client = Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_two_workers_share_one_budget(workers: list[str], cleanup: None) -> None:
    limits = httpx.Limits(max_connections=CONCURRENCY // len(workers))
    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=30) for url in workers]
    try:
        # The semaphore keeps waiting requests out of httpx's pool, whose queue is slow when long.
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> tuple[int, str]:
            client = clients[i % len(clients)]
            async with gate:
                response = await client.get("/")
            return response.status_code, str(client.base_url)

        results = await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    finally:
        for client in clients:
            await client.aclose()

    statuses = Counter(status for status, _ in results)
    allowed_by_worker = Counter(url for status, url in results if status == 200)
    assert statuses[200] <= BUDGET  # the guarantee
    assert statuses == {200: BUDGET, 429: REQUESTS - BUDGET}  # and nothing lost on the way
    assert len(allowed_by_worker) == 2  # both workers served part of the budget
