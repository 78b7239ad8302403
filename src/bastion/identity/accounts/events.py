"""A user's own security events, read from the audit trail (``GET /v1/account/events``).

Events whose subject is the user (``user:<id>``): logins and failures, lockouts, password and
email changes, revoked sessions. Newest first, in pages; the cursor is the last event id seen
(ids only grow, so pages never repeat or skip an event as new ones arrive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bastion.audit.models import audit_events
from bastion.storage import Database

__all__ = ["PAGE_SIZE", "SecurityEvent", "list_events"]

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    id: int
    time: datetime
    type: str
    outcome: str
    ip: str | None
    user_agent: str | None


async def list_events(
    database: Database, user_id: str, *, before: int | None, limit: int = PAGE_SIZE
) -> tuple[list[SecurityEvent], int | None]:
    """One page of the user's events, and the cursor of the next page (None: the last)."""
    c = audit_events.c
    query = select(c.id, c.time, c.type, c.outcome, c.client_ip, c.user_agent).where(
        c.subject == f"user:{user_id}"
    )
    if before is not None:
        query = query.where(c.id < before)
    query = query.order_by(c.id.desc()).limit(limit + 1)
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    events = [
        SecurityEvent(row.id, row.time, row.type, row.outcome, row.client_ip, row.user_agent)
        for row in rows[:limit]
    ]
    next_cursor = events[-1].id if len(rows) > limit else None
    return events, next_cursor
