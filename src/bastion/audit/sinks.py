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
import json
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import String, bindparam, insert, select, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.audit import ecs
from bastion.audit.chain import (
    CONTENT_COLUMNS,
    GENESIS_MAC,
    ChainKey,
    ChainKeys,
    canonical_tail,
    flat_texts,
    link_macs,
    utc_stamp,
)
from bastion.audit.errors import AuditWriteFailed, ChainHeadMissing
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditSubscriber, StoredEvent
from bastion.audit.models import HEAD_ROW_ID, audit_chain_head, audit_events
from bastion.audit.recorder import (
    WRITE_SLICE,
    Batch,
    ScrubbedDetails,
    clean_text,
    scrub,
    with_details,
)
from bastion.logging import direct_lines, get_logger
from bastion.storage import Database

AUDIT_LOGGER = "bastion.audit"
AUDIT_LOG_EVENT = "audit_event"
#: Log lines formatted between two yields to the event loop (a recorder's batch says its own
#: ``slice_size``).
LOG_CHUNK = WRITE_SLICE
#: Rows prepared, then chained and inserted per statement, between two yields to the event loop
#: (inside the batch's transaction too: see :func:`_append`); a recorder's batch says its own.
INSERT_CHUNK = WRITE_SLICE


def _slice_size(events: Sequence[AuditEvent], default: int) -> int:
    return events.slice_size if type(events) is Batch else default


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


#: The text columns in the chain's order (between the time and the details), and their limits.
_TEXTS = CONTENT_COLUMNS[1:-1]
_TEXT_LIMITS = tuple(_LIMITS[name] for name in _TEXTS)
#: The columns a batch inserts, in this order (the database numbers ``id``).
_INSERTED = (*CONTENT_COLUMNS, "seq", "mac", "key_id")


def _fit(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) <= _LIMITS[name] and value.isascii() and "\x00" not in value:
        return value  # the common case: nothing to cut or clean
    return clean_text(value[: _LIMITS[name]])


def _plain_values(enum: type[EventType | Outcome], column: str) -> bool:
    return all(_fit(column, member._value_) == member._value_ for member in enum)


#: Whether every event type and outcome fits its column as it is (checked once, here): then the
#: type and outcome of an event that holds the enums' own members need no check per event.
_PLAIN_ENUMS = _plain_values(EventType, "type") and _plain_values(Outcome, "outcome")
#: The limits of the text columns after the type and outcome.
_FREE_LIMITS = _TEXT_LIMITS[2:]


def _texts(event: AuditEvent) -> tuple[str | None, ...]:
    """The event's text columns in :data:`_TEXTS`' order, cut to fit and cleaned."""
    kind, outcome = event.type, event.outcome
    values: tuple[str | None, ...] = (
        kind._value_,  # the enum's value without the descriptor's cost
        outcome._value_,
        event.actor,
        event.subject,
        event.client_ip,
        event.user_agent,
        event.request_id,
        event.reason,
    )
    checked: tuple[str | None, ...]
    if _PLAIN_ENUMS and type(kind) is EventType and type(outcome) is Outcome:
        checked, limits = values[2:], _FREE_LIMITS  # the enums' values fit (see _PLAIN_ENUMS)
    else:
        checked, limits = values, _TEXT_LIMITS
    for value, limit in zip(checked, limits, strict=True):
        if value is not None and (len(value) > limit or not value.isascii() or "\x00" in value):
            return tuple(_fit(name, value) for name, value in zip(_TEXTS, values, strict=True))
    return values  # the common case: nothing to cut or clean


def _details(event: AuditEvent) -> Mapping[str, Any]:
    # Scrubbed unless the recorder already did (ScrubbedDetails): this sink may be used without
    # the recorder, and one bad value would fail the whole batch.
    details = event.details
    return details if type(details) is ScrubbedDetails else scrub(details)


def _row(event: AuditEvent) -> dict[str, Any]:
    row: dict[str, Any] = {"time": event.time}
    row.update(zip(_TEXTS, _texts(event), strict=True))
    row["details"] = _details(event)
    return row


def _same(value: Any) -> Any:
    return value


def _sqlite_time(stamp: str) -> str:
    # "2026-11-28T18:00:00.123456Z" -> "2026-11-28 18:00:00.123456", SQLite's DATETIME text.
    return stamp[:10] + " " + stamp[11:26]


#: Times the fast path is checked on: microseconds or none, UTC or another offset.
_PROBES = (
    datetime(2026, 11, 28, 18, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-7))),
)


#: ``json.dumps``' encoder (default separators, ASCII only, integral floats kept) built once,
#: for trees: scrubbed details hold no cycles and only JSON types (see ``scrub``).
_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)


def _json_column(details: Mapping[str, Any]) -> str:
    if _COLUMN_ENCODER is None:  # pragma: no cover - CPython always has the C encoder
        return json.dumps(details)
    return "".join(_COLUMN_ENCODER(details, 0))


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_COLUMN_ENCODER: Any = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, _not_json, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
)
#: Details the JSON column's fast path is checked on (when the insert is built).
_JSON_PROBES: tuple[dict[str, Any], ...] = (
    {},
    {"fields": ["display_name"], "n": 1, "f": 2.5, "big": 1e16, "t": True, "none": None},
    {"é": 'ünï\u2028"\\\x00', "nested": {"x": [1, {"y": -0.5}], "z": []}, "b": "a"},
)


class _Insert:
    """The events insert for one dialect, compiled once: its SQL (bound parameters only, as
    SQLAlchemy renders the table's insert) and the column types' own bind processing, applied
    here to each row's values instead of by SQLAlchemy's per-row parameter machinery.

    A batch is inserted with one driver-level ``executemany`` per chunk of parameter tuples.
    The content columns are processed when a batch is prepared, before the chain head is
    locked; only ``seq``, ``mac`` and ``key_id`` are added under the lock.
    """

    def __init__(self, dialect: Dialect) -> None:
        compiled = _INSERT_EVENTS.compile(
            dialect=dialect, column_keys=list(_INSERTED), for_executemany=True
        )
        self.sql = compiled.string
        processors = {
            name: audit_events.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in _INSERTED
        }
        self._time = processors["time"] or _same
        #: Whether the time parameter is the canonical stamp rearranged (SQLite's text form).
        self.stamped = all(self._time(probe) == _sqlite_time(utc_stamp(probe)) for probe in _PROBES)
        self._details: Callable[[Any], Any] = processors["details"] or _same
        # Only json.dumps (no serializer configured on the engine) is known to write these bytes.
        serializer = dialect._json_serializer  # noqa: SLF001
        if serializer is None and all(
            self._details(probe) == _json_column(probe) for probe in _JSON_PROBES
        ):
            # json.dumps' own bytes for a tree, without building a C encoder per call.
            self._details = _json_column
        #: Whether the details parameter is ``json.dumps``' text (the fast path above): a
        #: scrubbed tree's text made by another sink (:class:`Batch`) can be passed as it is.
        self.json_column = self._details is _json_column
        self._texts = [(n, p) for n, name in enumerate(_TEXTS) if (p := processors[name])]
        self._chain = [(n, p) for n, name in enumerate(_INSERTED[-3:]) if (p := processors[name])]
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        #: Whether a row's values are the parameters as they are (SQLite, asyncpg).
        self.plain = order == _INSERTED and not self._chain
        self._order = order
        # The chain head's two statements, for the driver's cursor when their parameters are
        # plain positional values in a known order (SQLite, asyncpg); else through SQLAlchemy.
        lock, move = _LOCK_HEAD.compile(dialect=dialect), _MOVE_HEAD.compile(dialect=dialect)
        head_columns = ("id", "seq", "mac")
        self.plain_head = (
            lock.positional
            and move.positional
            and list(lock.positiontup or ()) == ["id_1"]
            and list(move.positiontup or ()) == ["new_seq", "new_mac", "id_1"]
            and not any(
                audit_chain_head.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in head_columns
            )
        )
        self.lock_sql, self.move_sql = lock.string, move.string

    def content(
        self,
        time: datetime,
        texts: tuple[str | None, ...],
        details: Mapping[str, Any],
        stamp: str | None = None,
        column: str | None = None,
    ) -> tuple[Any, ...]:
        """The parameters of the content columns (:data:`CONTENT_COLUMNS`' order); ``stamp``
        is ``utc_stamp(time)`` when the caller has it, ``column`` the details' JSON text
        (``_json_column(details)``, only when :attr:`json_column`)."""
        if self._texts:  # pragma: no cover - no supported dialect processes text
            values = list(texts)
            for n, process in self._texts:
                values[n] = process(values[n])
            texts = tuple(values)
        if stamp is not None and self.stamped and time.tzinfo is not None and stamp[4] == "-":
            # The same text SQLAlchemy's processor formats (checked on probes when built).
            time_ = _sqlite_time(stamp)
        else:
            time_ = self._time(time)
        return (time_, *texts, self._details(details) if column is None else column)

    def params(self, content: tuple[Any, ...], seq: int, mac: str, key_id: str) -> Any:
        """A row's parameters for the driver, when not :attr:`plain`."""
        chain: list[Any] = [seq, mac, key_id]
        for n, process in self._chain:
            chain[n] = process(chain[n])
        values = dict(zip(_INSERTED, (*content, *chain), strict=True))
        if self._order is None:
            return values  # a named paramstyle
        return tuple(values[name] for name in self._order)


_INSERTS: weakref.WeakKeyDictionary[Dialect, _Insert] = weakref.WeakKeyDictionary()


def _insert_for(dialect: Dialect) -> _Insert:
    insert_ = _INSERTS.get(dialect)
    if insert_ is None:
        insert_ = _INSERTS[dialect] = _Insert(dialect)
    return insert_


#: An event ready to chain: its content parameters and its canonical tail (see
#: :func:`bastion.audit.chain.canonical_tail`), both independent of its place in the chain.
_Link = tuple[tuple[Any, ...], str]


def _link(insert_: _Insert, event: AuditEvent, batch: Batch | None = None, n: int = 0) -> _Link:
    """``event``'s link; with the recorder's ``batch`` (``event`` at index ``n``), the UTC stamp
    and details' JSON text another sink formatted are reused, and those made here are shared.

    Flat details (every decision event's) get their JSON text and the canonical tail from
    :func:`~bastion.audit.chain.flat_texts` (the same texts, each string encoded once)."""
    texts = _texts(event)
    details = _details(event)
    shared = None if batch is None else batch.stamps[n]
    # Formatted once, for the tail and (SQLite) the column, and shared with the other sinks.
    stamp = utc_stamp(event.time) if shared is None else shared
    if batch is not None and shared is None:
        batch.stamps[n] = stamp
    if type(details) is ScrubbedDetails:
        flat = flat_texts(stamp, texts, details)
        if flat is not None:
            column, tail = flat
            if batch is not None and batch.details_json[n] is None:
                batch.details_json[n] = column
            if not insert_.json_column:
                return insert_.content(event.time, texts, details, stamp), tail
            return insert_.content(event.time, texts, details, stamp, column), tail
    if batch is None:
        content = insert_.content(event.time, texts, details, stamp)
        return content, canonical_tail(stamp, texts, details)
    text = None
    if insert_.json_column and type(details) is ScrubbedDetails:
        text = batch.details_json[n]
        if text is None:
            text = batch.details_json[n] = _json_column(details)
    content = insert_.content(event.time, texts, details, stamp, text)
    return content, canonical_tail(stamp, texts, details)


def _ecs_members(event: AuditEvent, batch: Batch | None, n: int) -> str:
    """``ecs.ecs_members(event)``; with the recorder's ``batch``, from (or sharing) the UTC stamp
    and the details' JSON text of the event at index ``n`` (see :func:`_link`)."""
    if batch is None:
        return ecs.ecs_members(event)
    stamp = batch.stamps[n]
    if stamp is None:
        stamp = batch.stamps[n] = utc_stamp(event.time)
    details = event.details
    text = None
    if details and type(details) is ScrubbedDetails:
        text = batch.details_json[n]
        if text is None:
            text = batch.details_json[n] = _json_column(details)
    return ecs.ecs_members(event, stamp, text)


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
        try:
            # Database.transaction: on an inline SQLite file, the connection the requests' own
            # units of work use when it is free. A batch committed on another connection makes
            # SQLite drop that connection's page cache at its next transaction (WAL: the file
            # changed under it), and the next request pays to read its pages again.
            first = await self._database.transaction(
                lambda connection: _append(connection, keys, insert_, links, size)
            )
        except (SQLAlchemyError, OSError) as exc:
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
    return await connection.run_sync(_lock_head)


def _lock_head(connection: Connection) -> tuple[int, str]:
    result = connection.execute(_LOCK_HEAD)
    row = result.first()
    if row is not None:
        return int(row.seq), str(row.mac)
    chained = connection.scalar(
        select(audit_events.c.id).where(audit_events.c.seq.is_not(None)).limit(1)
    )
    if chained is not None:
        raise ChainHeadMissing
    legacy = connection.scalar(select(audit_events.c.id).order_by(audit_events.c.id.desc()))
    connection.execute(
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
    connection: AsyncConnection, keys: ChainKeys, rows: Sequence[Mapping[str, Any]]
) -> int:
    """Chain and insert ``rows`` (as made by :func:`event_row`) inside the caller's transaction;
    return the first one's sequence number."""
    insert_ = _insert_for(connection.dialect)
    links: list[_Link] = []
    for row in rows:
        texts = tuple(row[name] for name in _TEXTS)
        content = insert_.content(row["time"], texts, row["details"])
        links.append((content, canonical_tail(row["time"], texts, row["details"])))
    return await connection.run_sync(lambda sync: _append(sync, keys, insert_, links, INSERT_CHUNK))


def _append(
    connection: Connection, keys: ChainKeys, insert_: _Insert, links: Sequence[_Link], size: int
) -> int:
    """Chain and insert ``links`` inside ``connection``'s transaction (SQLAlchemy's synchronous
    API: run in a greenlet, the driver's waits suspend through it); the first sequence number.

    Chunks of ``size`` rows (their MACs and their insert). On PostgreSQL the event loop runs
    during each statement's round trip (the driver's waits), the head's row lock held. On an
    inline SQLite file the transaction is one step of the loop, on purpose: it holds the
    process's write gate and the kept connection, and a yield inside it would send every write
    arriving meanwhile (logins, rotations) to a pooled connection that must re-read its pages
    (docs/benchmarks.md, "refresh5"); the steps before and after it (preparation, subscribers,
    log lines, detectors) are sliced instead.

    The statements run on the driver's cursor (SQLAlchemy's execution context and result per
    statement cost more than a small chunk's rows); the driver's errors become
    AuditWriteFailed, as SQLAlchemy's do in :meth:`DatabaseSink.write`."""
    cursor = connection.connection.cursor()
    try:
        seq, mac = _lock_head_on(connection, cursor, insert_)
        first = seq + 1
        key = keys.current
        for start in range(0, len(links), size):
            chunk = links[start : start + size]
            seq, mac = _insert_chunk(cursor, insert_, chunk, key=key, head=(seq, mac))
        if insert_.plain_head:
            cursor.execute(insert_.move_sql, (seq, mac, HEAD_ROW_ID))
        else:
            connection.execute(_MOVE_HEAD, {"new_seq": seq, "new_mac": mac})
    except connection.dialect.loaded_dbapi.Error as exc:
        raise AuditWriteFailed from exc
    finally:
        cursor.close()
    return first


def _lock_head_on(connection: Connection, cursor: Any, insert_: _Insert) -> tuple[int, str]:
    """:func:`_lock_head`, on the driver's ``cursor`` when the head exists."""
    if insert_.plain_head:
        cursor.execute(insert_.lock_sql, (HEAD_ROW_ID,))
        row = cursor.fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
    return _lock_head(connection)  # through SQLAlchemy: creates a missing head (or refuses)


def _insert_chunk(
    cursor: Any, insert_: _Insert, chunk: Sequence[_Link], *, key: ChainKey, head: tuple[int, str]
) -> tuple[int, str]:
    """Chain ``chunk`` after ``head`` (seq, MAC) with ``key`` and insert it on the driver's
    ``cursor``; the new head."""
    seq, mac = head
    key_id = key.key_id
    macs = link_macs(key, seq, mac, [tail for _, tail in chunk])
    numbers = range(seq + 1, seq + 1 + len(chunk))
    if insert_.plain:
        params: list[Any] = [
            (*content, n, link, key_id)
            for n, (content, _), link in zip(numbers, chunk, macs, strict=True)
        ]
    else:
        params = [
            insert_.params(content, n, link, key_id)
            for n, (content, _), link in zip(numbers, chunk, macs, strict=True)
        ]
    cursor.executemany(insert_.sql, params)
    return seq + len(chunk), macs[-1]


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
        # Direct lines only when the configuration writes info lines (checked there); else
        # through structlog, formatting nothing when it drops them.
        direct = direct_lines(AUDIT_LOG_EVENT, logging.INFO, _LINE_FIELDS)
        log: Any = None
        if direct is None:
            log = self._logger.bind()
            enabled = getattr(log, "is_enabled_for", None)
            if enabled is not None and not enabled(logging.INFO):
                return
        batch = events if type(events) is Batch else None
        size = _slice_size(events, LOG_CHUNK)
        for start in range(0, len(events), size):
            if start:
                await asyncio.sleep(0)
            chunk = [_scrubbed(event) for event in events[start : start + size]]
            if direct is not None:
                lines = [
                    direct.line(_LINE_HEAD + _ecs_members(e, batch, n))
                    for n, e in enumerate(chunk, start)
                ]
                direct.write(lines)
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
