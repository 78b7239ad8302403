"""Seams of the monitoring package: detector counters, dead letters, alert sinks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bastion.audit.interfaces import StoredEvent
from bastion.monitoring.alerts import Alert


class CounterStore(Protocol):
    """Sliding-window sets shared by the detectors (in memory, or in Redis for every worker).

    ``touch`` adds ``member`` (re-adding moves it to ``now``) to the set ``key``, forgets members
    older than ``window`` seconds and returns how many remain; ``members`` lists them, oldest
    first. ``seen`` returns whether ``key`` was already marked within its ``ttl`` and marks it
    (the first caller gets False: alert cooldowns, known devices). Each set keeps at most a
    bounded number of members (the oldest go first). Raises
    :class:`~bastion.protections.ratelimit.errors.StoreUnavailable` when the store cannot answer.
    """

    async def touch(self, key: str, member: str, now: float, window: float) -> int: ...

    async def members(self, key: str, now: float, window: float) -> list[str]: ...

    async def seen(self, key: str, now: float, ttl: float, *, refresh: bool = False) -> bool: ...


class EventDetector(Protocol):
    """Looks at each stored audit event; returns the alerts it concludes (usually none).

    Raises :class:`~bastion.protections.ratelimit.errors.StoreUnavailable` when its counters
    cannot be reached (the engine counts it and moves on).

    A detector may declare ``event_types`` (a frozenset of :class:`EventType`): the engine then
    hands it only events of those types and queues no event that no detector looks at (most
    events: the detectors' cost is paid by the few event types they watch). Without it, the
    detector sees every event.
    """

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]: ...


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    alert_id: str
    channel: str
    destination: str
    detector: str
    severity: str
    payload: dict[str, Any]
    attempts: int
    last_error: str
    created_at: datetime


class DeadLetterStore(Protocol):
    """Keeps alerts that could not be delivered. ``add`` raises
    :class:`~bastion.monitoring.errors.DeadLetterStoreFailed`; ``list`` returns the newest first,
    those created before ``before`` when given."""

    async def add(
        self, alert: Alert, *, channel: str, destination: str, attempts: int, last_error: str
    ) -> DeadLetter: ...

    async def list(
        self, *, limit: int = 50, before: datetime | None = None
    ) -> list[DeadLetter]: ...
