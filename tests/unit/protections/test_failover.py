"""Failover: per-policy fail-closed / fail-open, the switch and the recovery logged and exported."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from bastion.clock import FrozenClock
from bastion.protections.ratelimit.backoff import BackoffPolicy, BackoffStatus
from bastion.protections.ratelimit.errors import StoreUnavailable
from bastion.protections.ratelimit.failover import FailoverStore
from bastion.protections.ratelimit.gcra import Decision, Rate
from bastion.protections.ratelimit.interfaces import Check, FailureMode, Ticker
from bastion.protections.ratelimit.memory import MemoryStore

OPEN = FailureMode.FAIL_OPEN
CLOSED = FailureMode.FAIL_CLOSED


class FlakyStore:
    """A memory store that can be switched off, like a Redis server that goes away."""

    def __init__(self, ticker: Ticker) -> None:
        self.inner = MemoryStore(ticker=ticker)
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise StoreUnavailable from ConnectionError("Connection refused")

    async def decide(self, checks: Sequence[Check]) -> tuple[Decision, ...]:
        self._check()
        return await self.inner.decide(checks)

    async def record_failure(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        self._check()
        return await self.inner.record_failure(key, policy)

    async def status(self, key: str, policy: BackoffPolicy) -> BackoffStatus:
        self._check()
        return await self.inner.status(key, policy)

    async def clear(self, key: str) -> None:
        self._check()
        await self.inner.clear(key)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def primary(ticker: Ticker) -> FlakyStore:
    return FlakyStore(ticker)


@pytest.fixture
def store(primary: FlakyStore, registry: CollectorRegistry, ticker: Ticker) -> FailoverStore:
    return FailoverStore(primary, registry=registry, probe_interval=2.0, ticker=ticker)


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def check(mode: FailureMode, key: str = "k") -> Check:
    return Check(key, Rate.per(3, 60.0), failure_mode=mode)


async def test_healthy_primary_decides(store: FailoverStore, primary: FlakyStore) -> None:
    assert (await store.decide([check(CLOSED)]))[0].remaining == 2
    assert primary.calls == 1
    assert not store.degraded


async def test_fail_closed_refuses_while_fail_open_uses_the_fallback(
    store: FailoverStore, primary: FlakyStore, registry: CollectorRegistry
) -> None:
    primary.down = True
    with pytest.raises(StoreUnavailable) as caught:
        await store.decide([check(OPEN, "api"), check(CLOSED, "login")])
    assert caught.value.retry_after == 2
    decisions = [await store.decide([check(OPEN, "api")]) for _ in range(4)]
    # The fallback still limits: the bucket of 3 holds locally.
    assert [d[0].allowed for d in decisions] == [True, True, True, False]
    assert metric(registry, "bastion_ratelimit_degraded_decisions_total", mode="fail_closed") == 1
    assert metric(registry, "bastion_ratelimit_degraded_decisions_total", mode="fail_open") == 4


async def test_switch_and_recovery_are_logged_and_exported(
    store: FailoverStore, primary: FlakyStore, registry: CollectorRegistry, clock: FrozenClock
) -> None:
    primary.down = True
    with capture_logs() as logs:
        for _ in range(3):
            await store.decide([check(OPEN)])
    assert [e["event"] for e in logs] == ["ratelimit_store_degraded"]  # logged once
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["error"] == "ConnectionError"
    assert metric(registry, "bastion_ratelimit_store_degraded") == 1
    assert metric(registry, "bastion_ratelimit_store_failovers_total") == 1

    primary.down = False
    await store.decide([check(OPEN)])
    assert store.degraded  # no probe before the interval is over
    clock.advance(timedelta(seconds=2))
    with capture_logs() as logs:
        await store.decide([check(OPEN)])
    assert not store.degraded
    assert [e["event"] for e in logs] == ["ratelimit_store_recovered"]
    assert logs[0]["outage_seconds"] == 2.0
    assert metric(registry, "bastion_ratelimit_store_degraded") == 0
    assert metric(registry, "bastion_ratelimit_store_recoveries_total") == 1


async def test_one_probe_per_interval(
    store: FailoverStore, primary: FlakyStore, clock: FrozenClock
) -> None:
    primary.down = True
    await store.decide([check(OPEN)])
    calls = primary.calls
    for _ in range(100):
        await store.decide([check(OPEN)])
    assert primary.calls == calls  # a sick primary is not hammered by every request
    clock.advance(timedelta(seconds=2))
    for _ in range(100):
        await store.decide([check(OPEN)])
    assert primary.calls == calls + 1
    assert store.degraded


async def test_backoff_follows_the_policy_failure_mode(
    store: FailoverStore, primary: FlakyStore
) -> None:
    closed = BackoffPolicy(name="pw")
    opened = BackoffPolicy(name="soft", failure_mode=OPEN)
    primary.down = True
    with pytest.raises(StoreUnavailable):
        await store.record_failure("u", closed)
    with pytest.raises(StoreUnavailable):
        await store.status("u", closed)
    assert (await store.record_failure("u", opened)).failures == 1.0
    assert (await store.status("u", opened)).failures == 1.0
    await store.clear("u")  # never fails: the counter decays by itself anyway
    assert (await store.status("u", opened)).failures == 0.0


async def test_default_fallback_is_a_memory_store(primary: FlakyStore) -> None:
    store = FailoverStore(primary)
    assert isinstance(store.fallback, MemoryStore)
