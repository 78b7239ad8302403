"""Search the trail: filters on time, type, outcome, actor, subject, IP and request id, newest
first, in pages with an opaque cursor.

The cursor names the last row of the page (its id: ids only grow, so pages never repeat or skip
an event as new ones arrive) and is bound to the filter it was made for, under a MAC
(:class:`CursorCodec`): a client cannot forge a position, or carry a cursor over to another
query to learn anything about it. A cursor that does not verify raises
:class:`~bastion.audit.errors.InvalidCursor` (400 ``invalid_cursor``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from bastion.audit.errors import InvalidCursor
from bastion.audit.models import audit_events
from bastion.storage import Database

__all__ = ["MAX_PAGE", "CursorCodec", "EventFilter", "EventRecord", "search"]

DEFAULT_PAGE = 50
MAX_PAGE = 500
#: Bytes of MAC in a cursor: 128 bits, unforgeable, short enough for a URL.
_CURSOR_MAC_BYTES = 16
_CURSOR_LABEL = b"bastion-audit-cursor/1:"
MAX_CURSOR_CHARS = 200


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Every field narrows the search; ``types`` matches any of the listed event types."""

    since: datetime | None = None
    until: datetime | None = None
    types: tuple[str, ...] = ()
    outcome: str | None = None
    actor: str | None = None
    subject: str | None = None
    client_ip: str | None = None
    request_id: str | None = None

    def described(self) -> dict[str, Any]:
        """The filters set, JSON-ready (for the audit event that records a search)."""
        values = {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "types": list(self.types) or None,
            "outcome": self.outcome,
            "actor": self.actor,
            "subject": self.subject,
            "ip": self.client_ip,
            "request_id": self.request_id,
        }
        return {name: value for name, value in values.items() if value is not None}

    def fingerprint(self) -> str:
        values = asdict(self)
        for name in ("since", "until"):
            if values[name] is not None:
                values[name] = values[name].isoformat()
        values["types"] = sorted(values["types"])
        text = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def apply(self, query: Select[Any]) -> Select[Any]:
        c = audit_events.c
        conditions = [
            c.time >= self.since if self.since else None,
            c.time < self.until if self.until else None,
            c.type.in_(self.types) if self.types else None,
            c.outcome == self.outcome if self.outcome else None,
            c.actor == self.actor if self.actor else None,
            c.subject == self.subject if self.subject else None,
            c.client_ip == self.client_ip if self.client_ip else None,
            c.request_id == self.request_id if self.request_id else None,
        ]
        return query.where(*(cond for cond in conditions if cond is not None))


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    seq: int | None
    time: datetime
    type: str
    outcome: str
    actor: str | None
    subject: str | None
    client_ip: str | None
    user_agent: str | None
    request_id: str | None
    reason: str | None
    details: dict[str, Any] = field(default_factory=dict)


class CursorCodec:
    """Opaque cursors: ``base64url(json([before_id, filter_fingerprint]) || mac)``."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, _CURSOR_LABEL + payload, "sha256")[:_CURSOR_MAC_BYTES]

    def encode(self, before_id: int, query: EventFilter) -> str:
        payload = json.dumps([before_id, query.fingerprint()], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def decode(self, cursor: str, query: EventFilter) -> int:
        """The id the next page starts below. Raises InvalidCursor unless this server made
        ``cursor`` for this very filter."""
        if len(cursor) > MAX_CURSOR_CHARS:
            raise InvalidCursor
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursor from None
        payload, mac = raw[:-_CURSOR_MAC_BYTES], raw[-_CURSOR_MAC_BYTES:]
        if len(raw) <= _CURSOR_MAC_BYTES or not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidCursor
        before_id, fingerprint = json.loads(payload)
        if fingerprint != query.fingerprint():
            raise InvalidCursor
        return int(before_id)


def _record(row: Any) -> EventRecord:
    return EventRecord(
        id=int(row.id),
        seq=None if row.seq is None else int(row.seq),
        time=row.time,
        type=row.type,
        outcome=row.outcome,
        actor=row.actor,
        subject=row.subject,
        client_ip=row.client_ip,
        user_agent=row.user_agent,
        request_id=row.request_id,
        reason=row.reason,
        details=dict(row.details or {}),
    )


def page_statement(query: EventFilter, before_id: int | None, limit: int) -> Select[Any]:
    """The statement of one page: ``limit + 1`` rows matching ``query`` below ``before_id``,
    newest (highest id) first. Each filter is served by an index (see
    :mod:`bastion.audit.models`)."""
    c = audit_events.c
    statement = query.apply(select(audit_events))
    if before_id is not None:
        statement = statement.where(c.id < before_id)
    return statement.order_by(c.id.desc()).limit(limit + 1)


async def search(
    database: Database,
    query: EventFilter,
    *,
    before_id: int | None = None,
    limit: int = DEFAULT_PAGE,
) -> tuple[Sequence[EventRecord], int | None]:
    """One page, newest first, and the id to continue below (None: the last page)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PAGE}")
    async with database.engine.connect() as connection:
        rows = (await connection.execute(page_statement(query, before_id, limit))).all()
    found = [_record(row) for row in rows[:limit]]
    return found, found[-1].id if len(rows) > limit else None
