"""The Redis store against the real server at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import socket
from collections import deque

import pytest
from redis.asyncio import Redis

from bastion.protections.ratelimit.backoff import BackoffPolicy
from bastion.protections.ratelimit.errors import StoreUnavailable
from bastion.protections.ratelimit.gcra import Rate
from bastion.protections.ratelimit.interfaces import Check
from bastion.protections.ratelimit.redis_store import RedisStore

pytestmark = pytest.mark.redis


async def pattern(store: RedisStore, checks: list[Check], n: int) -> str:
    out = ""
    for _ in range(n):
        decisions = await store.decide(checks)
        out += "A" if all(d.allowed for d in decisions) else "D"
    return out


async def test_burst_then_deny(redis_store: RedisStore, redis_prefix: str) -> None:
    check = Check(f"{redis_prefix}k", Rate.per(5, 60.0))
    decisions = [(await redis_store.decide([check]))[0] for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0]
    assert decisions[0].reset_after == pytest.approx(12.0, abs=0.1)
    assert decisions[-1].retry_after == pytest.approx(12.0, abs=0.1)
    assert decisions[-1].limit == 5


async def test_refill_uses_server_time(redis_store: RedisStore, redis_prefix: str) -> None:
    check = Check(f"{redis_prefix}k", Rate.per(10, 1.0, burst=2))  # one every 100 ms
    assert await pattern(redis_store, [check], 3) == "AAD"
    await asyncio.sleep(0.12)
    assert await pattern(redis_store, [check], 2) == "AD"


async def test_all_or_nothing(redis_store: RedisStore, redis_prefix: str) -> None:
    wide = Check(f"{redis_prefix}wide", Rate.per(10, 60.0))
    narrow = Check(f"{redis_prefix}narrow", Rate.per(2, 60.0))
    assert await pattern(redis_store, [wide, narrow], 5) == "AADDD"
    assert await pattern(redis_store, [wide], 9) == "AAAAAAAAD"


async def test_duplicate_keys_in_one_call(redis_store: RedisStore, redis_prefix: str) -> None:
    check = Check(f"{redis_prefix}k", Rate.per(3, 60.0))
    first, second = await redis_store.decide([check, check])
    assert (first.remaining, second.remaining) == (2, 1)
    _, fourth = await redis_store.decide([check, check])
    assert not fourth.allowed
    assert await pattern(redis_store, [check], 2) == "AD"


async def test_keys_expire_by_themselves(redis_store: RedisStore, redis_prefix: str) -> None:
    key = f"{redis_prefix}k"
    await redis_store.decide([Check(key, Rate.per(4, 8.0))])  # TAT = now + 2 s
    ttl = await redis_store.client.pttl(key)
    assert 1900 <= ttl <= 2000
    await redis_store.decide([Check(key, Rate.per(4, 8.0))])
    assert 3900 <= await redis_store.client.pttl(key) <= 4000


async def test_no_refill_budget_stays_exact(redis_store: RedisStore, redis_prefix: str) -> None:
    check = Check(f"{redis_prefix}k", Rate.per(100, 365 * 86_400.0))
    assert await pattern(redis_store, [check], 101) == "A" * 100 + "D"


async def test_script_is_reloaded_after_noscript(
    redis_store: RedisStore, redis_prefix: str
) -> None:
    check = Check(f"{redis_prefix}k", Rate.per(3, 60.0))
    await redis_store.decide([check])
    # Simulates a Redis restart: the server forgets every cached script.
    await redis_store.client.script_flush()
    assert (await redis_store.decide([check]))[0].remaining == 1
    assert (await redis_store.client.script_exists(redis_store._gcra.sha)) == [True]


async def test_one_round_trip_per_decision(
    redis_store: RedisStore, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await redis_store.decide([Check(f"{redis_prefix}warm", Rate.per(3, 60.0))])  # script cached
    log = CommandLog(redis_store, monkeypatch)
    checks = [Check(f"{redis_prefix}{i}", Rate.per(3, 60.0)) for i in range(3)]
    await redis_store.decide(checks)
    assert log.sent == ["EVALSHA"]


async def test_backoff_counter(redis_store: RedisStore, redis_prefix: str) -> None:
    policy = BackoffPolicy(name="pw", threshold=2, base_delay=10.0, half_life=3600.0)
    key = f"{redis_prefix}bo"
    waits = [(await redis_store.record_failure(key, policy)).retry_after for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([10.0, 20.0, 40.0], abs=0.01)
    status = await redis_store.status(key, policy)
    assert status.failures == pytest.approx(5.0, abs=0.001)
    assert status.retry_after == pytest.approx(40.0, abs=0.1)
    assert (await redis_store.client.pttl(key)) > 40_000  # expires after the decay, not before
    await redis_store.clear(key)
    assert (await redis_store.status(key, policy)).failures == 0.0
    assert not await redis_store.client.exists(key)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_server_raises_store_unavailable() -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.decide([Check("k", Rate.per(1, 1.0))])
        assert caught.value.code == "protection_unavailable"
        with pytest.raises(StoreUnavailable):
            await store.record_failure("k", BackoffPolicy(name="pw"))
        with pytest.raises(StoreUnavailable):
            await store.clear("k")
    finally:
        await store.aclose()


async def test_wraps_an_existing_client(redis_url: str, redis_prefix: str) -> None:
    client = Redis.from_url(redis_url)
    store = RedisStore(client)
    try:
        assert await pattern(store, [Check(f"{redis_prefix}k", Rate.per(1, 60.0))], 2) == "AD"
    finally:
        await store.aclose()


async def test_refused_call_reports_untouched_buckets(
    redis_store: RedisStore, redis_prefix: str
) -> None:
    narrow = Check(f"{redis_prefix}narrow", Rate.per(1, 60.0))
    await redis_store.decide([narrow])
    wide, refused = await redis_store.decide(
        [Check(f"{redis_prefix}wide", Rate.per(5, 5.0)), narrow]
    )
    assert not refused.allowed
    assert (wide.remaining, wide.reset_after) == (5, 0.0)


class CommandLog:
    """Records the commands a Redis client sends."""

    def __init__(self, store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[object] = []
        execute = store.client.execute_command

        async def counting(*args: object, **options: object) -> object:
            self.sent.append(args[0])
            return await execute(*args, **options)

        monkeypatch.setattr(store.client, "execute_command", counting)


async def test_concurrent_decisions_share_one_call(
    redis_store: RedisStore, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await redis_store.decide([Check(f"{redis_prefix}warm", Rate.per(3, 60.0))])
    log = CommandLog(redis_store, monkeypatch)
    check = Check(f"{redis_prefix}k", Rate.per(5, 60.0))
    results = await asyncio.gather(*(redis_store.decide([check]) for _ in range(20)))
    # Two calls go out at once (max_in_flight); the 18 requests behind them share one call.
    assert log.sent == ["EVALSHA"] * 3
    # Applied one after the other, exactly as separate calls: 5 allowed. (Which 5 depends on
    # which connection reaches the server first, as it would for separate calls.)
    allowed = [r[0] for r in results if r[0].allowed]
    assert sorted(d.remaining for d in allowed) == [0, 1, 2, 3, 4]


async def test_coalesced_decisions_stay_all_or_nothing(redis_url: str, redis_prefix: str) -> None:
    redis_store = RedisStore.from_url(redis_url, max_in_flight=1)
    shared = Check(f"{redis_prefix}shared", Rate.per(10, 60.0))
    narrow = Check(f"{redis_prefix}narrow", Rate.per(1, 60.0))
    await redis_store.decide([Check(f"{redis_prefix}warm", Rate.per(1, 60.0))])
    results = await asyncio.gather(
        redis_store.decide([Check(f"{redis_prefix}first", Rate.per(1, 60.0))]),  # goes alone
        redis_store.decide([shared, narrow]),
        redis_store.decide([shared, narrow]),  # refused by narrow: takes nothing from shared
        redis_store.decide([shared]),
    )
    await redis_store.aclose()
    assert [all(d.allowed for d in r) for r in results] == [True, True, False, True]
    assert results[3][0].remaining == 8


async def test_large_bursts_are_split(
    redis_store: RedisStore, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await redis_store.decide([Check(f"{redis_prefix}warm", Rate.per(3, 60.0))])
    log = CommandLog(redis_store, monkeypatch)
    monkeypatch.setattr("bastion.protections.ratelimit.redis_store.MAX_KEYS_PER_CALL", 10)
    checks = [Check(f"{redis_prefix}{i}", Rate.per(1, 60.0)) for i in range(25)]
    results = await asyncio.gather(*(redis_store.decide([c]) for c in checks))
    assert log.sent == ["EVALSHA"] * 5  # 2 at once, then 23 queued: 10 + 10 + 3
    assert all(r[0].allowed for r in results)


async def test_a_cancelled_request_does_not_disturb_the_others(
    redis_store: RedisStore, redis_prefix: str
) -> None:
    check = Check(f"{redis_prefix}k", Rate.per(5, 60.0))
    tasks = [asyncio.ensure_future(redis_store.decide([check])) for _ in range(3)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [d[0].allowed for d in (done[0], done[2])] == [True, True]  # type: ignore[index]


async def test_coalescing_can_be_turned_off(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore.from_url(redis_url, coalesce=False)
    try:
        check = Check(f"{redis_prefix}k", Rate.per(2, 60.0))
        results = await asyncio.gather(*(store.decide([check]) for _ in range(3)))
        assert sorted(r[0].allowed for r in results) == [False, True, True]
        assert await store.decide([]) == ()
    finally:
        await store.aclose()


async def test_every_waiting_request_learns_of_a_failure() -> None:
    store = RedisStore.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        results = await asyncio.gather(
            *(store.decide([Check("k", Rate.per(1, 1.0))]) for _ in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert len({id(r) for r in results}) == 5  # one error each, not one shared instance
    finally:
        await store.aclose()


async def test_an_idle_worker_sends_at_once(
    redis_store: RedisStore, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await redis_store.decide([Check(f"{redis_prefix}warm", Rate.per(3, 60.0))])
    log = CommandLog(redis_store, monkeypatch)
    for i in range(3):
        await redis_store.decide([Check(f"{redis_prefix}{i}", Rate.per(3, 60.0))])
    assert log.sent == ["EVALSHA"] * 3
    assert redis_store._queue == deque()
    assert redis_store._in_flight == 0


def test_max_in_flight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        RedisStore.from_url("redis://127.0.0.1:6379/0", max_in_flight=0)
