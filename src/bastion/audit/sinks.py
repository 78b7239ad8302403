"""Audit sinks: where the recorder writes batches of events.

:class:`DatabaseSink` is the trail of record (queryable, indexed); :class:`LogSink` emits the
same events as ECS JSON lines for a SIEM; :class:`InMemorySink` is for tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, insert
from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.ecs import to_ecs
from bastion.audit.errors import AuditWriteFailed
from bastion.audit.events import AuditEvent
from bastion.audit.models import audit_events
from bastion.audit.recorder import clean_text, scrub
from bastion.logging import get_logger
from bastion.storage import Database

AUDIT_LOGGER = "bastion.audit"

#: Column length limits: values are cut to fit (and cleaned, see ``clean_text``), because one
#: over-long or unencodable value would otherwise make the database refuse the whole batch on
#: every retry, taking the other events of the batch with it.
_LIMITS: dict[str, int] = {
    column.name: column.type.length
    for column in audit_events.columns
    if isinstance(column.type, String) and column.type.length
}


def _fit(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    return clean_text(value[: _LIMITS[name]])


def _row(event: AuditEvent) -> dict[str, Any]:
    return {
        "time": event.time,
        "type": _fit("type", event.type.value),
        "outcome": _fit("outcome", event.outcome.value),
        "actor": _fit("actor", event.actor),
        "subject": _fit("subject", event.subject),
        "client_ip": _fit("client_ip", event.client_ip),
        "user_agent": _fit("user_agent", event.user_agent),
        "request_id": _fit("request_id", event.request_id),
        "reason": _fit("reason", event.reason),
        # Scrubbed again: this sink may be used without the recorder, and one bad value would
        # fail the whole batch.
        "details": scrub(event.details),
    }


class DatabaseSink:
    """Inserts each batch in one transaction (all or nothing, so a retry duplicates nothing
    unless the commit succeeded and only its acknowledgement was lost).

    Raises AuditWriteFailed when the database refuses the batch.
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    async def write(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        rows = [_row(event) for event in events]
        try:
            async with self._database.engine.begin() as connection:
                await connection.execute(insert(audit_events), rows)
        except (SQLAlchemyError, OSError) as exc:
            raise AuditWriteFailed from exc


class LogSink:
    """Writes one ECS JSON log line per event to the ``bastion.audit`` logger."""

    def __init__(self) -> None:
        self._logger = get_logger(AUDIT_LOGGER)

    async def write(self, events: Sequence[AuditEvent]) -> None:
        for event in events:
            self._logger.info("audit_event", **{"log.logger": AUDIT_LOGGER, **to_ecs(event)})


class InMemorySink:
    """Keeps written events in :attr:`events` (for tests)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def write(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)
