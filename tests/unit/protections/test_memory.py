"""The in-process store: atomic all-or-nothing decisions, bounded memory, expiry, backoff."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bastion.clock import FrozenClock
from bastion.protections.ratelimit.backoff import BackoffPolicy
from bastion.protections.ratelimit.gcra import Rate
from bastion.protections.ratelimit.interfaces import Check, Ticker
from bastion.protections.ratelimit.memory import SWEEP_EVERY, BoundedTable, MemoryStore

PER_SECOND_BURST_3 = Rate.per(3, 3.0)


async def pattern(store: MemoryStore, checks: list[Check], n: int) -> str:
    out = ""
    for _ in range(n):
        decisions = await store.decide(checks)
        out += "A" if all(d.allowed for d in decisions) else "D"
    return out


async def test_decides_like_gcra_on_the_injected_clock(clock: FrozenClock, ticker: Ticker) -> None:
    store = MemoryStore(ticker=ticker)
    check = [Check("k", PER_SECOND_BURST_3)]
    assert await pattern(store, check, 4) == "AAAD"
    clock.advance(timedelta(seconds=1))
    assert await pattern(store, check, 2) == "AD"


async def test_keys_are_independent(ticker: Ticker) -> None:
    store = MemoryStore(ticker=ticker)
    assert await pattern(store, [Check("a", PER_SECOND_BURST_3)], 4) == "AAAD"
    assert await pattern(store, [Check("b", PER_SECOND_BURST_3)], 4) == "AAAD"


async def test_all_or_nothing_across_checks(ticker: Ticker) -> None:
    store = MemoryStore(ticker=ticker)
    wide, narrow = Check("wide", Rate.per(10, 10.0)), Check("narrow", Rate.per(2, 10.0))
    assert await pattern(store, [wide, narrow], 5) == "AADDD"
    # The refused requests took nothing from the wide bucket: 8 of 10 units are left.
    assert await pattern(store, [wide], 9) == "AAAAAAAAD"


async def test_refused_request_reports_every_check(ticker: Ticker) -> None:
    store = MemoryStore(ticker=ticker)
    await store.decide([Check("narrow", Rate.per(1, 10.0))])
    wide, narrow = await store.decide(
        [Check("wide", Rate.per(5, 5.0)), Check("narrow", Rate.per(1, 10.0))]
    )
    assert wide.allowed
    assert not narrow.allowed
    assert narrow.retry_after == 10.0


async def test_the_same_key_twice_in_one_call_counts_twice(ticker: Ticker) -> None:
    store = MemoryStore(ticker=ticker)
    check = Check("k", PER_SECOND_BURST_3)
    first, second = await store.decide([check, check])
    assert (first.remaining, second.remaining) == (2, 1)
    third, fourth = await store.decide([check, check])
    assert third.allowed
    assert not fourth.allowed
    assert await pattern(store, [check], 1) == "A"  # the refused pair consumed nothing


async def test_full_buckets_are_forgotten(clock: FrozenClock, ticker: Ticker) -> None:
    store = MemoryStore(ticker=ticker)
    for i in range(SWEEP_EVERY - 1):
        await store.decide([Check(f"k{i}", PER_SECOND_BURST_3)])
    clock.advance(timedelta(seconds=2))
    await store.decide([Check("last", PER_SECOND_BURST_3)])  # the write that triggers a sweep
    assert store.size < SWEEP_EVERY


async def test_rotating_keys_cannot_grow_memory_beyond_the_cap(ticker: Ticker) -> None:
    store = MemoryStore(max_keys=100, ticker=ticker)
    hot = Check("attacker", Rate.per(5, 60.0))
    for i in range(10_000):
        await store.decide([Check(f"spoofed-{i}", Rate.per(5, 60.0))])
        if i % 50 == 0:
            await store.decide([hot])
    assert store.size <= 100
    assert store.evictions > 0
    # The hot key is always recently used, so rotation did not reset its bucket.
    assert await pattern(store, [hot], 1) == "D"


def test_bounded_table_expiry_and_eviction_order() -> None:
    table: BoundedTable[str] = BoundedTable(max_keys=2)
    table.put("a", "A", expires_ns=100, now_ns=0)
    table.put("b", "B", expires_ns=100, now_ns=0)
    assert table.get("a", now_ns=0) == "A"
    table.put("a", "A2", expires_ns=100, now_ns=0)  # "a" is now the most recently used
    table.put("c", "C", expires_ns=100, now_ns=0)
    assert table.get("b", now_ns=0) is None
    assert table.get("a", now_ns=0) == "A2"
    assert table.get("a", now_ns=100) is None  # expired
    assert table.evictions == 1
    with pytest.raises(ValueError, match="max_keys"):
        BoundedTable[str](max_keys=0)


async def test_backoff_counter(clock: FrozenClock, ticker: Ticker) -> None:
    store = MemoryStore(ticker=ticker)
    policy = BackoffPolicy(name="pw", threshold=2, base_delay=1.0, half_life=60.0)
    waits = [(await store.record_failure("u", policy)).retry_after for _ in range(5)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0]
    assert (await store.status("u", policy)).retry_after == 4.0
    assert (await store.status("other", policy)).failures == 0.0
    clock.advance(timedelta(seconds=60))
    assert (await store.status("u", policy)).failures == 2.5
    await store.clear("u")
    assert (await store.status("u", policy)).failures == 0.0


async def test_refused_call_reports_untouched_buckets(ticker: Ticker) -> None:
    store = MemoryStore(ticker=ticker)
    await store.decide([Check("narrow", Rate.per(1, 10.0))])
    wide, _ = await store.decide(
        [Check("wide", Rate.per(5, 5.0)), Check("narrow", Rate.per(1, 10.0))]
    )
    assert (wide.remaining, wide.reset_after) == (5, 0.0)
