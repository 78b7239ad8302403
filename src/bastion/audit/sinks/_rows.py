"""An event as the parameters of its ``audit_events`` row, and the statements a batch runs.

Values are cut to fit their columns and cleaned (one bad value must not make the database refuse
a whole batch), the details scrubbed unless the recorder did; the insert is compiled once per
dialect with the column types' own bind processing (:class:`_Insert`). A :data:`_Link` is an
event ready to chain: its content parameters and its canonical tail.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import String, bindparam, insert, update
from sqlalchemy.engine import Dialect

from bastion.audit.chain import (
    CONTENT_COLUMNS,
    canonical_tail,
    flat_texts,
    utc_stamp,
)
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.models import HEAD_ROW_ID, audit_chain_head, audit_events
from bastion.audit.recorder import Batch, ScrubbedDetails, clean_text, scrub


def _slice_size(events: Sequence[AuditEvent], default: int) -> int:
    return events.slice_size if type(events) is Batch else default


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


event_row = _row
