"""Seams of the audit package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bastion.audit.events import AuditEvent


class AuditRecorder(Protocol):
    """Accepts events from request handlers without blocking them.

    ``record`` never awaits and never raises: the event goes into a bounded queue; when the queue is
    full the event is counted, logged and exported as a metric (never dropped silently).
    ``start`` launches the background writer; ``aclose`` flushes every queued event, then stops.
    """

    def record(self, event: AuditEvent) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class AuditSink(Protocol):
    """Persists a batch of events (database, log line, ...).

    Raises on failure; the recorder retries with backoff.
    """

    async def write(self, events: Sequence[AuditEvent]) -> None: ...
