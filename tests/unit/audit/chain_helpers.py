"""Shared by the chain tests: keys, events, and writing a chain through the real sink."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bastion.audit.chain import ChainKeys
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.models import audit_chain_head, audit_events
from bastion.audit.sinks import DatabaseSink
from bastion.crypto import Keyring
from bastion.storage import Database

ROOT = b"audit-chain-test-root-key-0123456789"
KEYS = ChainKeys.from_keyring(Keyring(ROOT))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def event(n: int, **fields: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "type": EventType.IDENTITY_LOGIN_FAILED,
        "outcome": Outcome.FAILURE,
        "time": T0 + timedelta(seconds=n, microseconds=n * 7),
        "actor": None,
        "subject": f"user:u{n % 3}",
        "client_ip": f"203.0.113.{n % 250}",
        "request_id": f"req-{n}",
        "reason": "wrong_password",
        "details": {"n": n, "ratio": n / 3, "big": 1e16, "nested": {"list": [1, 2.5, "é"]}},
    }
    values.update(fields)
    return AuditEvent(**values)


async def write_chain(database: Database, count: int, batch: int = 7) -> None:
    sink = DatabaseSink(database, KEYS)
    events = [event(n) for n in range(1, count + 1)]
    for start in range(0, count, batch):
        await sink.write(events[start : start + batch])


async def ids_by_seq(database: Database) -> dict[int, int]:
    async with database.engine.connect() as connection:
        rows = await connection.execute(select(audit_events.c.seq, audit_events.c.id))
        return {int(r.seq): int(r.id) for r in rows if r.seq is not None}


async def head(database: Database) -> Any:
    async with database.engine.connect() as connection:
        return (await connection.execute(select(audit_chain_head))).first()
