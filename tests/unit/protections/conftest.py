"""Fixtures for the rate limiting tests: an injected clock and the shared Redis at 6379.

Redis tests skip with a visible reason when the server is unreachable, unless ``CI=true``, where
a missing Redis is a failure. Each test gets its own key prefix and deletes its keys afterwards:
the server is shared, so nothing here may flush it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bastion.clock import FrozenClock
from bastion.protections.ratelimit.interfaces import Ticker, ticker_from_clock
from bastion.protections.ratelimit.redis_store import RedisStore

REDIS_ADDRESS = ("127.0.0.1", 6379)
REDIS_URL = "redis://127.0.0.1:6379/0"


def require_redis() -> str:
    try:
        socket.create_connection(REDIS_ADDRESS, timeout=0.5).close()
    except OSError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis is not reachable at 127.0.0.1:6379 and CI=true")
        pytest.skip("Redis is not reachable at 127.0.0.1:6379 (CI=true makes this a failure)")
    return REDIS_URL


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def ticker(clock: FrozenClock) -> Ticker:
    return ticker_from_clock(clock)


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"bastion-test:{uuid.uuid4().hex}:"
    yield value
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{value}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_url)
    yield store
    await store.aclose()
