"""A sink that keeps what it is given, for tests."""

from __future__ import annotations

from collections.abc import Sequence

from bastion.audit.events import AuditEvent


class InMemorySink:
    """Keeps written events in :attr:`events` (for tests)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def write(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)
