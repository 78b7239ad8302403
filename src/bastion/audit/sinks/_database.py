"""The database sink: the chained, queryable trail of record."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from bastion.audit.chain import ChainKeys
from bastion.audit.errors import AuditWriteFailed
from bastion.audit.events import AuditEvent, EventType
from bastion.audit.interfaces import AuditSubscriber, StoredEvent
from bastion.audit.recorder import Batch
from bastion.audit.sinks._append import INSERT_CHUNK, UNIT_ROWS, _append, append_unit
from bastion.audit.sinks._rows import _insert_for, _Link, _link, _slice_size
from bastion.logging import get_logger
from bastion.storage import Database, StorageError

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
        #: The event types some subscriber declared (``event_types``); None: every type.
        self._wanted: frozenset[EventType] | None = frozenset()

    def subscribe(self, subscriber: AuditSubscriber) -> None:
        """Call ``subscriber.on_stored(events)`` after every committed batch (a large batch in
        several calls, in chain order).

        A subscriber that declares ``event_types`` (a collection of :class:`EventType`) may be
        handed only the events of the types some subscriber declared (it must still ignore
        those it does not look at); events of no declared type are then not handed out at all.
        One subscriber without ``event_types`` gets (and makes every one get) every event.
        """
        types = getattr(subscriber, "event_types", None)
        wanted = self._wanted
        self._wanted = None if types is None or wanted is None else wanted | frozenset(types)
        self._subscribers.append(subscriber)

    async def write(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        insert_ = _insert_for(self._database.engine.dialect)
        # Prepared before the transaction, in chunks with the event loop running between two:
        # the head lock is held only for the MACs and the inserts.
        links: list[_Link] = []
        batch = events if type(events) is Batch else None
        size = _slice_size(events, INSERT_CHUNK)
        try:
            for start in range(0, len(events), size):
                if start:
                    await asyncio.sleep(0)
                chunk = events[start : start + size]
                links += [_link(insert_, e, batch, n) for n, e in enumerate(chunk, start)]
        except (ValueError, TypeError) as exc:  # a value no column type accepts (naive time)
            raise AuditWriteFailed from exc
        keys = self._keys
        database = self._database
        try:
            # A small batch on an inline SQLite file whose kept connection and write gate are
            # free: the whole transaction in one synchronous call (Database.try_unit: no
            # greenlet, no SQLAlchemy transaction); else, or when it did not run (nothing
            # written), the ordinary path from the start.
            first = (
                database.try_unit(lambda unit: append_unit(unit, keys, insert_, links, size))
                if len(links) <= UNIT_ROWS
                else None
            )
            if first is None:
                # Database.transaction: on an inline SQLite file, the connection the requests'
                # own units of work use when it is free. A batch committed on another connection
                # makes SQLite drop that connection's page cache at its next transaction (WAL:
                # the file changed under it), and the next request pays to read its pages again.
                first = await database.transaction(
                    lambda connection: _append(connection, keys, insert_, links, size)
                )
        except (SQLAlchemyError, StorageError, OSError) as exc:
            raise AuditWriteFailed from exc
        if self._subscribers:
            await self._hand_out(events, first, size)

    async def _hand_out(self, events: Sequence[AuditEvent], first: int, size: int) -> None:
        """Every subscriber gets the committed ``events`` (``first``: the first one's sequence
        number) it may want, in chain order, ``size`` at a time with the loop running between
        two."""
        wanted = self._wanted
        if wanted is None:
            stored = [StoredEvent(first + n, event) for n, event in enumerate(events)]
        else:
            stored = [
                StoredEvent(first + n, event)
                for n, event in enumerate(events)
                # A type outside the enum is handed out: no declaration can leave it out.
                if event.type in wanted or type(event.type) is not EventType
            ]
        for start in range(0, len(stored), size):
            if start:
                await asyncio.sleep(0)
            self._notify(stored[start : start + size])

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
