"""Fixtures for the rate limiting tests: a ticker on the injected clock, and Redis helpers.

``redis_url`` and ``clock`` come from ``tests/conftest.py`` (Redis tests skip with the reason
shown when the server is unreachable, and fail under ``CI=true``). The Redis server is shared:
each test gets its own key prefix and deletes its keys afterwards; nothing here flushes it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bastion.clock import FrozenClock
from bastion.protections.ratelimit.interfaces import Ticker, ticker_from_clock
from bastion.protections.ratelimit.redis_store import RedisStore


@pytest.fixture
def ticker(clock: FrozenClock) -> Ticker:
    return ticker_from_clock(clock)


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
