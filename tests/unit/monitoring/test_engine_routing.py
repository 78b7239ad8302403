"""The engine hands each event only to the detectors that watch its type (and queues no event no
detector watches), without losing any event a detector does watch."""

from __future__ import annotations

from collections.abc import Sequence

from tests.unit.monitoring.helpers import EventStream, ListRecorder, login_failed

from bastion.audit.events import EventType
from bastion.audit.interfaces import StoredEvent
from bastion.monitoring.alerts import Alert
from bastion.monitoring.counters import MemoryCounters
from bastion.monitoring.detectors import build_detectors
from bastion.monitoring.metrics import SecurityMetrics
from bastion.monitoring.services import AlertDispatcher, DetectorEngine
from bastion.monitoring.settings import MonitoringSettings


class Spy:
    """Records what it is shown; watches ``event_types`` when given, else everything."""

    def __init__(self, event_types: frozenset[EventType] | None = None) -> None:
        if event_types is not None:
            self.event_types = event_types
        self.seen: list[EventType] = []

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]:
        self.seen.append(stored.event.type)
        return ()


def _engine(*detectors: Spy) -> DetectorEngine:
    metrics = SecurityMetrics()
    return DetectorEngine(
        detectors,
        MemoryCounters(),
        AlertDispatcher(ListRecorder(), metrics),
        metrics,
        cooldown_seconds=0,
        queue_size=100,
    )


async def test_each_detector_sees_only_its_types_and_undeclared_ones_see_all() -> None:
    logins = Spy(frozenset({EventType.IDENTITY_LOGIN_FAILED}))
    everything = Spy()
    engine = _engine(logins, everything)
    await engine.start()
    s = EventStream()
    engine.on_stored(
        [
            s(EventType.IDENTITY_PROFILE_UPDATED),
            login_failed(s, "203.0.113.7", "victim"),
            s(EventType.ALERT_BRUTE_FORCE),  # alerts are never fed back
        ]
    )
    await engine.drain()
    await engine.aclose()
    assert logins.seen == [EventType.IDENTITY_LOGIN_FAILED]
    assert everything.seen == [EventType.IDENTITY_PROFILE_UPDATED, EventType.IDENTITY_LOGIN_FAILED]


async def test_events_no_detector_watches_are_not_queued() -> None:
    engine = _engine(Spy(frozenset({EventType.IDENTITY_LOGIN_FAILED})))
    s = EventStream()
    engine.on_stored([s(EventType.IDENTITY_PROFILE_UPDATED) for _ in range(5)])  # not started
    assert engine._queue.qsize() == 0  # nothing to evaluate, nothing queued
    await engine.aclose()


def test_every_built_in_detector_declares_what_it_watches() -> None:
    # A detector without event_types would make every event cost a queue slot and a call.
    for detector in build_detectors(MonitoringSettings(), MemoryCounters(), b"k" * 32):
        types = getattr(detector, "event_types", None)
        assert types, type(detector).__name__
        assert all(isinstance(t, EventType) for t in types)


def test_the_engine_declares_the_types_some_detector_watches() -> None:
    # The audit sink may leave out events of types the engine does not declare: the declaration
    # must hold every type some detector is handed (none for alerts, all for an undeclared one).
    only = _engine(Spy(frozenset({EventType.IDENTITY_LOGIN_FAILED, EventType.ALERT_BRUTE_FORCE})))
    assert only.event_types == {EventType.IDENTITY_LOGIN_FAILED}
    everything = _engine(Spy())
    assert everything.event_types == {t for t in EventType if t.source != "alert"}
    metrics = SecurityMetrics()
    real = DetectorEngine(
        build_detectors(MonitoringSettings(), MemoryCounters(), b"p" * 32),
        MemoryCounters(),
        AlertDispatcher(ListRecorder(), metrics),
        metrics,
        cooldown_seconds=0,
        queue_size=100,
    )
    for kind in EventType:
        assert (kind in real.event_types) == bool(real._by_type[kind])
