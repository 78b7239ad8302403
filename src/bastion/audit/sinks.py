"""Audit sinks: where the recorder writes batches of events.

:class:`DatabaseSink` is the trail of record (queryable, indexed, chained: see
:mod:`bastion.audit.chain`); :class:`LogSink` emits the same events as ECS JSON lines for a SIEM;
:class:`InMemorySink` is for tests. Other SIEM transports live in :mod:`bastion.audit.export`.

Appending to the chain, on every backend and with any number of worker processes: the batch's
transaction *first* updates the one ``audit_chain_head`` row. That write takes the head's row
lock on PostgreSQL (a concurrent appender blocks on it until this transaction ends, then reads
the head it left) and SQLite's database write lock (a transaction that starts with a write never
works from a stale snapshot; the next writer waits: on the write gate and busy retries of
the inline driver, or in ``busy_timeout`` with aiosqlite). Only then are the
sequence numbers and MACs computed, the rows inserted and the head moved, all in one transaction:
appends are serialized, so concurrent writers still build one gap-free chain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import String, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit import ecs
from bastion.audit.chain import GENESIS_MAC, ChainKeys, event_mac
from bastion.audit.errors import AuditWriteFailed, ChainHeadMissing
from bastion.audit.events import AuditEvent
from bastion.audit.interfaces import AuditSubscriber, StoredEvent
from bastion.audit.models import HEAD_ROW_ID, audit_chain_head, audit_events
from bastion.audit.recorder import ScrubbedDetails, clean_text, scrub, with_details
from bastion.logging import direct_lines, get_logger
from bastion.storage import Database

AUDIT_LOGGER = "bastion.audit"
AUDIT_LOG_EVENT = "audit_event"
#: Log lines formatted between two yields to the event loop.
LOG_CHUNK = 50
#: Rows chained and inserted per statement (the event loop runs between two).
INSERT_CHUNK = 50
_LINE_FIELDS = ("log.logger", *ecs.FIELDS)
_LINE_HEAD = f'"log.logger": "{AUDIT_LOGGER}", '

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
    if len(value) <= _LIMITS[name] and value.isascii() and "\x00" not in value:
        return value  # the common case: nothing to cut or clean
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
        # Scrubbed unless the recorder already did (ScrubbedDetails): this sink may be used
        # without the recorder, and one bad value would fail the whole batch.
        "details": scrub(event.details),
    }


logger = get_logger("bastion.audit.sinks")


class DatabaseSink:
    """Appends each batch to the chain in one transaction (all or nothing, so a retry duplicates
    nothing unless the commit succeeded and only its acknowledgement was lost).

    Raises AuditWriteFailed when the database refuses the batch. After each commit, every
    :class:`~bastion.audit.interfaces.AuditSubscriber` gets the stored events with their
    sequence numbers (see :meth:`subscribe`).
    """

    def __init__(self, database: Database, keys: ChainKeys) -> None:
        self._database = database
        self._keys = keys
        self._subscribers: list[AuditSubscriber] = []

    def subscribe(self, subscriber: AuditSubscriber) -> None:
        """Call ``subscriber.on_stored(events)`` after every committed batch."""
        self._subscribers.append(subscriber)

    async def write(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        rows = [_row(event) for event in events]
        try:
            async with self._database.engine.begin() as connection:
                first = await append_rows(connection, self._keys, rows)
        except (SQLAlchemyError, OSError) as exc:
            raise AuditWriteFailed from exc
        if self._subscribers:
            stored = [StoredEvent(first + n, event) for n, event in enumerate(events)]
            self._notify(stored)

    def _notify(self, stored: list[StoredEvent]) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber.on_stored(stored)
            except Exception as exc:  # noqa: BLE001 - a subscriber must not fail the trail
                logger.error(  # noqa: TRY400 - class name only: details may quote values
                    "audit_subscriber_failed",
                    subscriber=type(subscriber).__name__,
                    error=type(exc).__name__,
                )


#: Built once: each batch runs the same three statements (SQLAlchemy's compiled cache is keyed
#: on them; building them per batch costs more than the cache saves).
_LOCK_HEAD = (
    update(audit_chain_head)
    .where(audit_chain_head.c.id == HEAD_ROW_ID)
    .values(seq=audit_chain_head.c.seq)
    .returning(audit_chain_head.c.seq, audit_chain_head.c.mac)
)
_INSERT_EVENTS = insert(audit_events)
_MOVE_HEAD = (
    update(audit_chain_head)
    .where(audit_chain_head.c.id == HEAD_ROW_ID)
    .values(seq=bindparam("new_seq"), mac=bindparam("new_mac"))
)


async def lock_head(connection: AsyncConnection) -> tuple[int, str]:
    """Lock the chain head for this transaction (see the module docstring); its seq and MAC.

    Creates the head of an empty chain if it is missing (a schema made without the migrations);
    raises ChainHeadMissing if chained events exist without a head (it was deleted).
    """
    result = await connection.execute(_LOCK_HEAD)
    row = result.first()
    if row is not None:
        return int(row.seq), str(row.mac)
    chained = await connection.scalar(
        select(audit_events.c.id).where(audit_events.c.seq.is_not(None)).limit(1)
    )
    if chained is not None:
        raise ChainHeadMissing
    legacy = await connection.scalar(select(audit_events.c.id).order_by(audit_events.c.id.desc()))
    await connection.execute(
        insert(audit_chain_head).values(
            id=HEAD_ROW_ID,
            seq=0,
            mac=GENESIS_MAC,
            anchor_seq=0,
            anchor_mac=GENESIS_MAC,
            legacy_max_id=legacy or 0,
        )
    )
    return 0, GENESIS_MAC


async def append_rows(
    connection: AsyncConnection, keys: ChainKeys, rows: Sequence[dict[str, Any]]
) -> int:
    """Chain and insert ``rows`` (as made by :func:`event_row`) inside the caller's transaction;
    return the first one's sequence number."""
    seq, mac = await lock_head(connection)
    first = seq + 1
    key = keys.current
    # In chunks: each insert awaits the database, so requests run between chunks instead of
    # waiting for a whole batch's MACs and parameter processing (p99).
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = list(rows[start : start + INSERT_CHUNK])
        for row in chunk:
            seq += 1
            mac = event_mac(key, seq, row, mac)
            row.update(seq=seq, mac=mac, key_id=key.key_id)
        await connection.execute(_INSERT_EVENTS, chunk)
    await connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_mac": mac})
    return first


event_row = _row


class LogSink:
    """Writes one ECS JSON log line per event to the ``bastion.audit`` logger.

    Nothing is formatted when the logger drops info lines. The logging configuration is resolved
    once per batch (not per line), so a reconfiguration applies from the next batch; long
    batches yield to the event loop between chunks, so formatting them cannot stall requests.

    With the JSON logging :func:`bastion.logging.configure` sets up, the lines are written
    directly (:func:`bastion.logging.direct_lines`: the same bytes the processor chain would
    write, each chunk in one write); under any other configuration, through structlog. Details
    not scrubbed by the recorder are scrubbed here, so the line never holds more than the row.
    """

    def __init__(self) -> None:
        self._logger = get_logger(AUDIT_LOGGER)

    async def write(self, events: Sequence[AuditEvent]) -> None:
        log: Any = self._logger.bind()
        enabled = getattr(log, "is_enabled_for", None)
        if enabled is not None and not enabled(logging.INFO):
            return
        direct = direct_lines(AUDIT_LOG_EVENT, logging.INFO, _LINE_FIELDS)
        for start in range(0, len(events), LOG_CHUNK):
            if start:
                await asyncio.sleep(0)
            chunk = [_scrubbed(event) for event in events[start : start + LOG_CHUNK]]
            if direct is not None:
                direct.write([direct.line(_LINE_HEAD + ecs.ecs_members(e)) for e in chunk])
                continue
            for event in chunk:
                log.info(AUDIT_LOG_EVENT, **{"log.logger": AUDIT_LOGGER, **ecs.to_ecs(event)})


def _scrubbed(event: AuditEvent) -> AuditEvent:
    if type(event.details) is ScrubbedDetails:
        return event
    return with_details(event, scrub(event.details))


class InMemorySink:
    """Keeps written events in :attr:`events` (for tests)."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def write(self, events: Sequence[AuditEvent]) -> None:
        self.events.extend(events)
