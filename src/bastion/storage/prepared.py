"""Statements compiled once per dialect and run on the connection's DBAPI cursor: the hottest
statements' way past SQLAlchemy's per-execution machinery.

SQLAlchemy Core builds, for every execution of even a cached statement, an execution context,
its parameter dictionaries, a cursor result and its metadata, and a row object per row: about
150,000 instructions for a point read on SQLite, twenty times SQLite's own work. A
:class:`PreparedStatement` keeps the SQL that SQLAlchemy compiles for the statement (bound
parameters only: no value is ever written into the SQL text) with each parameter's and each
returned column's own type processing (the same ``UTCDateTime`` or JSON conversion SQLAlchemy
applies), and runs it on the cursor of the SQLAlchemy connection's DBAPI connection: the same
transaction, the same driver (``sqlite+inline``'s write gate and busy retries, asyncpg's
prepared statements), the same errors (a DBAPI error goes through the connection's own handling:
wrapped as SQLAlchemy's ``DBAPIError`` subclasses with parameters hidden, a disconnect
invalidates the connection).

Only statements whose compiled form needs nothing at execution time qualify (checked when
compiled): no Python-side column defaults to compute, no expanding ``IN`` parameters, no
literal-rendered parameters. Engine ``*_execute`` events do not see these statements (Bastion
registers none).
"""

from __future__ import annotations

import operator
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import JSON, TypeEngine

from bastion.storage.columns import UTCDateTime
from bastion.storage.sqlite_inline import InlineConnection, InlineUnit

__all__ = ["PreparedStatement"]

Processor = Callable[[Any], Any]
#: SQLite's DATETIME text (SQLAlchemy's default storage format for it).
_SQLITE_DATETIME_FORMAT = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)

#: The same format, positional.
_SQLITE_DATETIME_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


def _utc_text(value: datetime | None) -> str | None:
    """:class:`UTCDateTime`'s bind processing on SQLite in one step: the aware value in UTC,
    naive, as SQLite's DATETIME text. The same string as SQLAlchemy's chain
    (``process_bind_param`` then ``storage_format % fields``, whose fields are exactly
    ``isoformat``'s), the same ``ValueError`` for a naive datetime."""
    if value is None:
        return None
    recent = _RECENT_UTC_TEXTS
    last = recent[0]
    if value is last[0]:  # a transaction binds its "now" several times
        return last[1]
    before = recent[1]
    if value is before[0]:  # ... between which it binds another one ("idle since")
        return before[1]
    tz = value.tzinfo
    if tz is None:
        raise ValueError("naive datetime: Bastion stores aware UTC timestamps only")
    utc = value if tz is UTC else value.astimezone(UTC)
    # SQLAlchemy's own storage format over the UTC fields (cheaper than ``isoformat``).
    text = _SQLITE_DATETIME_TEXT % (
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.microsecond,
    )
    recent[1] = last
    recent[0] = (value, text)
    return text


#: The last two (value, text) of :func:`_utc_text`, the newest first: datetimes are immutable,
#: and each pair is replaced whole, so a reader sees matching ones.
_RECENT_UTC_TEXTS: list[tuple[datetime | None, str]] = [(None, ""), (None, "")]


def _bind_processor(kind: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """The type's bind processing for ``dialect``, as SQLAlchemy applies it; on SQLite, an
    equivalent one-step processor for :class:`UTCDateTime` stored in the default format."""
    if type(kind) is UTCDateTime and dialect.name == "sqlite":
        impl = cast("UTCDateTime", kind.dialect_impl(dialect)).impl_instance
        if (
            isinstance(impl, SQLITE_DATETIME) and impl._storage_format == _SQLITE_DATETIME_FORMAT  # noqa: SLF001
        ):
            return _utc_text
    return kind.dialect_impl(dialect).bind_processor(dialect)


#: A JSON column's short texts remembered per statement column, and how many.
_JSON_TEXT_MAX_CHARS = 256
_JSON_TEXTS_MAX = 64


def _remembering_lists(process: Processor) -> Processor:
    """A JSON column's result processing (SQLAlchemy's: the dialect's JSON decoding, a pure
    function of the text) that remembers the short texts it decoded to a list of strings
    (such as a session's ``amr``): the same text again gives an equal new list, not decoded
    again. Anything else is decoded each time."""
    known: dict[str, tuple[str, ...]] = {}

    def remembering(value: Any) -> Any:
        if type(value) is not str or len(value) > _JSON_TEXT_MAX_CHARS:
            return process(value)
        seen = known.get(value)
        if seen is not None:
            return list(seen)
        decoded = process(value)
        if type(decoded) is list and all(type(item) is str for item in decoded):
            if len(known) >= _JSON_TEXTS_MAX:
                known.clear()
            known[value] = tuple(decoded)
        return decoded

    return remembering


class _Form:
    """One statement compiled for one dialect."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast("SQLCompiler", statement.compile(dialect=dialect))
        if (
            compiled.insert_prefetch
            or compiled.update_prefetch
            or compiled.literal_execute_params
            or any(bind.expanding for bind in compiled.binds.values())
        ):
            raise ValueError("the statement needs SQLAlchemy's execution-time processing")
        self.sql = compiled.string
        binds = compiled.binds
        processors = {name: _bind_processor(bind.type, dialect) for name, bind in binds.items()}
        defaults = {name: bind.effective_value for name, bind in binds.items()}
        order = compiled.positiontup if compiled.positional else None
        #: (name, processor, default) of each parameter in the driver's order (named: any).
        self.binds = [(name, processors[name], defaults[name]) for name in order or binds]
        self.positional = order is not None
        #: Positional: each distinct name's (name, processor, default) once, and the picker of
        #: the driver's tuple from their values (a name bound several times, such as a
        #: statement's "now", is read and processed once).
        distinct = list(dict.fromkeys(order or ()))
        self._distinct = [(name, processors[name], defaults[name]) for name in distinct]
        where = [distinct.index(name) for name in order or ()]
        self._pick: Callable[[list[Any]], tuple[Any, ...]] | None = (
            operator.itemgetter(*where) if len(where) > 1 else None
        )
        returned = list(getattr(statement, "exported_columns", ()))
        self.returns = bool(returned)
        row_type: Any = namedtuple("Row", [column.key for column in returned])  # type: ignore[misc]
        self.row: Any = row_type
        self._types = [column.type.dialect_impl(dialect) for column in returned]
        self._dialect = dialect
        self._result: list[Processor | None] | None = None

    def parameters(self, values: Mapping[str, Any]) -> Any:
        get = values.get
        pick = self._pick
        if pick is not None:
            return pick(
                [
                    get(name, default) if process is None else process(get(name, default))
                    for name, process, default in self._distinct
                ]
            )
        out = [
            get(name, default) if process is None else process(get(name, default))
            for name, process, default in self.binds
        ]
        if self.positional:
            return tuple(out)
        return dict(zip((name for name, _, _ in self.binds), out, strict=True))

    def rows(self, raw: Sequence[Sequence[Any]], description: Any) -> list[Any]:
        processors = self._result
        if processors is None:
            # As SQLAlchemy does: each column's processor given the driver's type code.
            processors = self._result = [
                _remembering_lists(p) if isinstance(kind, JSON) and p is not None else p
                for kind, p in (
                    (kind, kind.result_processor(self._dialect, column[1]))
                    for kind, column in zip(self._types, description, strict=True)
                )
            ]
        make = self.row._make
        if not any(processors):
            return [make(row) for row in raw]
        return [
            make(
                [value if p is None else p(value) for p, value in zip(processors, row, strict=True)]
            )
            for row in raw
        ]


class PreparedStatement:
    """``statement`` (an ``insert``, ``update``, ``delete`` or ``select`` of Core, built with
    named ``bindparam`` s), compiled once per dialect; :meth:`execute` runs it on a connection."""

    def __init__(self, statement: Executable) -> None:
        if not isinstance(statement, ClauseElement):
            raise TypeError("a Core statement is required")
        self.statement = statement
        self._forms: weakref.WeakKeyDictionary[Dialect, _Form] = weakref.WeakKeyDictionary()
        #: The last dialect's form, tried first (an app runs on one dialect): a weak reference
        #: to the dialect, as the forms' keys are.
        self._last: tuple[weakref.ref[Dialect], _Form] | None = None

    def _form(self, dialect: Dialect) -> _Form:
        last = self._last
        if last is not None and last[0]() is dialect:
            return last[1]
        form = self._forms.get(dialect)
        if form is None:
            form = self._forms[dialect] = _Form(self.statement, dialect)
        self._last = (weakref.ref(dialect), form)
        return form

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> list[Any]:
        """Run the statement with ``values`` (by parameter name) in ``connection``'s
        transaction; its rows (named tuples of the returned columns, processed by their types;
        empty when it returns none). Raises SQLAlchemy's ``DBAPIError`` subclasses, as
        ``connection.execute`` does."""
        form = self._form(connection.dialect)
        parameters = form.parameters(values)
        dbapi: Any = connection.connection.dbapi_connection
        if isinstance(dbapi, InlineConnection):
            # The inline SQLite driver's own way: no cursor object per statement.
            try:
                raw, description = dbapi.fetch(form.sql, parameters)
            except Exception as exc:  # noqa: BLE001 - handed to SQLAlchemy's own error handling
                connection._handle_dbapi_exception(exc, form.sql, parameters, None, None)  # noqa: SLF001
            return form.rows(raw, description) if raw else []
        cursor = dbapi.cursor()
        try:
            cursor.execute(form.sql, parameters)
            rows = cursor.fetchall() if form.returns else ()
            description = cursor.description
        except Exception as exc:  # noqa: BLE001 - handed to SQLAlchemy's own error handling
            connection._handle_dbapi_exception(exc, form.sql, parameters, cursor, None)  # noqa: SLF001
        finally:
            cursor.close()
        return form.rows(rows, description) if rows else []

    def execute_unit(self, unit: InlineUnit, values: Mapping[str, Any]) -> list[Any]:
        """:meth:`execute` inside a unit of :meth:`Database.try_unit
        <bastion.storage.Database.try_unit>` (inline SQLite): the same SQL, parameters and
        rows. Raises :mod:`sqlite3`'s errors as they are (the unit rolls back on them)."""
        form = self._form(unit.dialect)
        raw, description = unit.fetch(form.sql, form.parameters(values))
        return form.rows(raw, description) if raw else []
