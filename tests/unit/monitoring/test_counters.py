"""The memory counters stay bounded whatever keys and members an attacker makes up."""

from __future__ import annotations

from bastion.monitoring.counters import MAX_MEMBERS, MemoryCounters


async def test_sliding_window_forgets_old_members() -> None:
    store = MemoryCounters()
    assert await store.touch("k", "a", now=0, window=10) == 1
    assert await store.touch("k", "b", now=5, window=10) == 2
    assert await store.touch("k", "a", now=9, window=10) == 2  # re-added: moved, not doubled
    assert await store.touch("k", "c", now=16, window=10) == 2  # b (t=5) is gone
    assert await store.members("k", now=16, window=10) == ["a", "c"]


async def test_sets_and_keys_are_bounded() -> None:
    store = MemoryCounters(max_keys=100)
    for i in range(MAX_MEMBERS + 50):
        count = await store.touch("one", f"m{i}", now=i * 0.001, window=3600)
    assert count == MAX_MEMBERS
    for i in range(500):
        await store.touch(f"ip:{i}", "x", now=1, window=3600)
        await store.seen(f"mark:{i}", now=1, ttl=3600)
    assert len(store._sets) == 100
    assert len(store._marks) == 100
    assert await store.members("ip:0", now=1, window=3600) == []  # evicted, oldest first


async def test_seen_marks_once_per_ttl_and_refresh_extends() -> None:
    store = MemoryCounters()
    assert await store.seen("cd", now=0, ttl=60) is False
    assert await store.seen("cd", now=30, ttl=60) is True
    assert await store.seen("cd", now=61, ttl=60) is False  # expired: a new alert may fire
    assert await store.seen("dev", now=0, ttl=60, refresh=True) is False
    assert await store.seen("dev", now=50, ttl=60, refresh=True) is True
    assert await store.seen("dev", now=100, ttl=60, refresh=True) is True  # kept alive by use
