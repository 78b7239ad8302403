"""The limiter remembers who a caller is and which checks apply: never at the cost of a bucket."""

from __future__ import annotations

from typing import Any

from bastion.protections.ratelimit.interfaces import Ticker
from bastion.protections.ratelimit.memory import MemoryStore
from bastion.protections.ratelimit.policies import KeyKind, Policy
from bastion.protections.ratelimit.services import KEY_CACHE_SIZE, RateLimiter

API = Policy.per("api-ip", 100, 60)
PER_USER = Policy.per("api-user", 2, 60, keys=[KeyKind.USER])


def request(ip: str = "192.0.2.1", **state: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "client": (ip, 1234),
        "headers": [],
        "state": state,
    }


async def allowed(limiter: RateLimiter, scope: dict[str, Any]) -> bool:
    verdict = await limiter.check(scope, limiter.applicable("GET", "/x"))
    return verdict.allowed


async def test_a_cached_anonymous_plan_does_not_hide_the_user_policy(ticker: Ticker) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [API, PER_USER])
    for _ in range(5):
        assert await allowed(limiter, request())  # anonymous: per IP only
    results = [await allowed(limiter, request(user_id="alice")) for _ in range(3)]
    assert results == [True, True, False]


async def test_a_user_id_counts_as_its_string_whatever_its_type(ticker: Ticker) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [PER_USER])
    assert await allowed(limiter, request(user_id=7))
    assert await allowed(limiter, request(user_id="7"))
    assert not await allowed(limiter, request(user_id=7))  # the same bucket as "7"


async def test_unhashable_ids_are_decided_without_the_cache(ticker: Ticker) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [PER_USER])
    assert await allowed(limiter, request(user_id=["x"]))
    assert await allowed(limiter, request(user_id=["x"]))
    assert not await allowed(limiter, request(user_id=["x"]))


async def test_a_list_of_policies_is_never_remembered(ticker: Ticker) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [PER_USER])
    applied = [(PER_USER, "")]
    scope = request(user_id="bob")
    assert (await limiter.check(scope, applied)).allowed
    applied.clear()  # the caller may change its list: the next check must see that
    assert (await limiter.check(scope, applied)).results == ()


async def test_the_plan_cache_is_bounded(ticker: Ticker) -> None:
    limiter = RateLimiter(MemoryStore(ticker=ticker), [API])
    for i in range(KEY_CACHE_SIZE + 10):
        assert await allowed(limiter, request(ip=f"10.0.{i // 256}.{i % 256}"))
    assert len(limiter._plans) <= KEY_CACHE_SIZE
