"""The engine and dispatcher: alerts become audit events with severity and evidence, cooldowns,
no feedback loop, bounded queues; and the Redis-shared counters across two workers."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from tests.unit.monitoring.helpers import EventStream, ListRecorder, login_failed

from bastion.audit.events import EventType
from bastion.monitoring.alerts import Detector
from bastion.monitoring.counters import MemoryCounters, RedisCounters
from bastion.monitoring.detectors import build_detectors
from bastion.monitoring.interfaces import CounterStore
from bastion.monitoring.metrics import SecurityMetrics
from bastion.monitoring.services import AlertDispatcher, DetectorEngine
from bastion.monitoring.settings import MonitoringSettings

KEY = b"k" * 32


def _engine(
    store: CounterStore, audit: ListRecorder, *, queue_size: int = 1000
) -> tuple[DetectorEngine, SecurityMetrics]:
    metrics = SecurityMetrics()
    settings = MonitoringSettings()
    engine = DetectorEngine(
        build_detectors(settings, store, KEY),
        store,
        AlertDispatcher(audit, metrics),
        metrics,
        cooldown_seconds=settings.cooldown_seconds,
        queue_size=queue_size,
    )
    return engine, metrics


async def test_an_attack_becomes_one_alert_event_with_severity_and_evidence() -> None:
    audit = ListRecorder()
    engine, metrics = _engine(MemoryCounters(), audit)
    await engine.start()
    s = EventStream()
    attack = [login_failed(s, "203.0.113.7", "victim") for _ in range(15)]
    engine.on_stored(attack)
    await engine.drain()
    [event] = audit.of(EventType.ALERT_BRUTE_FORCE)
    assert event.details["severity"] == "high"
    assert event.details["evidence"] == [e.seq for e in attack[:10]]
    assert event.reason == Detector.BRUTE_FORCE.value
    # The alert event itself comes back through the trail: it is not fed to the detectors.
    engine.on_stored([s(EventType.ALERT_BRUTE_FORCE, details=dict(event.details))])
    await engine.drain()
    await engine.aclose()
    assert len(audit.of(EventType.ALERT_BRUTE_FORCE)) == 1  # cooldown: 5 more failures, no repeat
    text = "\n".join(_scrape(metrics))
    assert 'bastion_alerts_total{detector="brute_force",severity="high"} 1.0' in text


async def test_a_full_detector_queue_counts_drops_and_never_blocks() -> None:
    audit = ListRecorder()
    engine, metrics = _engine(MemoryCounters(), audit, queue_size=10)
    s = EventStream()
    engine.on_stored([login_failed(s, "203.0.113.7", "victim") for _ in range(25)])  # not started
    assert metrics.detector_dropped == 15
    await engine.aclose()


def _scrape(metrics: SecurityMetrics) -> list[str]:
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415

    registry = CollectorRegistry()
    registry.register(metrics)
    return generate_latest(registry).decode().splitlines()


# -- two workers ------------------------------------------------------------------------------
@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[RedisCounters, RedisCounters]]:
    prefix = f"bastion:test:{secrets.token_hex(6)}:"
    first = RedisCounters(Redis.from_url(redis_url), key_prefix=prefix)
    second = RedisCounters(Redis.from_url(redis_url), key_prefix=prefix)
    try:
        yield first, second
    finally:
        keys = [k async for k in first.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await first.client.delete(*keys)
        await first.aclose()
        await second.aclose()


async def _spread_attack(one: DetectorEngine, two: DetectorEngine) -> None:
    """An attacker whose 14 guesses land alternately on two workers (7 each: under 10)."""
    s = EventStream()
    for i in range(14):
        (one if i % 2 else two).on_stored([login_failed(s, "203.0.113.7", "victim")])
    for engine in (one, two):
        await engine.start()
        await engine.drain()
        await engine.aclose()


async def test_two_workers_sharing_redis_counters_see_the_whole_attack(
    redis_pair: tuple[RedisCounters, RedisCounters],
) -> None:
    audit = ListRecorder()  # one trail, as in production
    one, _ = _engine(redis_pair[0], audit)
    two, _ = _engine(redis_pair[1], audit)
    await _spread_attack(one, two)
    # Exactly one alert: the shared cooldown stops the second worker from repeating it.
    [event] = audit.of(EventType.ALERT_BRUTE_FORCE)
    assert len(event.details["evidence"]) == 10


async def test_two_workers_with_memory_counters_each_see_half_control() -> None:
    audit = ListRecorder()
    one, _ = _engine(MemoryCounters(), audit)
    two, _ = _engine(MemoryCounters(), audit)
    await _spread_attack(one, two)
    assert audit.of(EventType.ALERT_BRUTE_FORCE) == []
