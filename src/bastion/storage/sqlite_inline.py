"""``sqlite+inline``: SQLite for SQLAlchemy's async engine, run on the event loop's own thread.

Why. aiosqlite gives every connection a worker thread; SQLAlchemy's adapter makes about four
trips to it per statement (execute, fetch, cursor open and close), each a queue put, a thread
wake-up, ``call_soon_threadsafe``, a self-pipe write and a loop iteration, plus two kernel
thread switches. A point query or a one-row write on a local file in WAL mode takes a few
microseconds; the trips cost many times more (measured: about half of a refresh-token
rotation's instructions were the database layer). This driver calls the stdlib :mod:`sqlite3`
directly from the coroutine's greenlet: a statement is a plain function call.

The hazard, and how it is avoided. Inline code must never wait inside SQLite, or the whole event
loop waits with it. With the usual ``busy_timeout`` a write by coroutine B, while coroutine A
(same process, another pooled connection) holds SQLite's write lock and is suspended on some
other ``await``, would sleep in SQLite's busy handler *on the loop thread*: A could never resume
to commit, and B would fail after the timeout (a self-deadlock). So:

* Inline connections run with ``PRAGMA busy_timeout=0``: SQLite never sleeps, a locked database
  answers ``SQLITE_BUSY`` at once. The statement is then retried after an ``asyncio.sleep``
  (backing off like SQLite's own busy handler, 1 ms to 100 ms) until the same 5 s bound as
  before (:data:`BUSY_TIMEOUT_SECONDS`), then the ``database is locked`` error is raised as
  before. This covers other processes (several workers on one file) and, in the worst case,
  this one.
* In the process, a :class:`WriteGate` per database file and event loop queues the writers:
  a connection takes the gate before a statement that may write (anything but ``SELECT`` and
  a plain ``BEGIN``) and keeps it until its transaction ends (commit, rollback, close, or a
  statement after which SQLite is back in autocommit). Writers of one process wait on an
  asyncio future instead of polling, in arrival order, and a transaction that holds the gate
  cannot be overtaken by another of the process's writers. Waiting for the gate shares the
  statement's 5 s bound: a coroutine that opens a second write transaction while its first is
  still open gets ``database is locked`` after 5 s, as it did with aiosqlite.
* Readers take no gate: WAL lets them read while a writer writes.

Transactions are unchanged: Python's :mod:`sqlite3` (legacy transaction control) issues
``BEGIN`` (deferred) before the first ``INSERT``/``UPDATE``/``DELETE``, so a write transaction
starts with a write and never works from a stale snapshot. A ``SQLITE_BUSY`` is retried only
when the connection held no snapshot before the statement (no transaction yet, or one that has
run nothing): inside a transaction that already read (an explicit ``BEGIN`` followed by
reads), SQLite does not call its busy handler either and a retry could only meet
``SQLITE_BUSY_SNAPSHOT``, so the error is raised at once, as before. Because such a
transaction's first write takes the gate, no writer of this process can commit under it.

Trade-off: a statement's own work now runs on the loop thread. Bastion's statements are point
reads and short writes on indexed rows; long scans (the audit trail's verification) stream
through a server-side cursor in bounded batches. ``sqlite+aiosqlite`` stays available for
deployments that prefer the worker thread (name it in ``BASTION_DATABASE_URL``).

WAL checkpoints. SQLite's automatic checkpoint (every 1000 WAL pages) would run inside the
committing call, copying pages and syncing two files on the loop thread. A
:class:`~bastion.storage.Database` turns it off on its inline connections
(``PRAGMA wal_autocheckpoint=0``) and checkpoints in a worker thread instead
(:mod:`bastion.storage.wal`): each connection reports the write transactions it ends through
:attr:`InlineConnection.on_write`, and the checkpointer holds the write gate (a
:class:`GateHolder` like a connection) while it runs, so this process's commits cannot
overtake it. What remains on the loop: the commit that starts the WAL over after a checkpoint
syncs the WAL's new 32-byte header (SQLite does so with ``synchronous=NORMAL``). An engine made
without a ``Database`` keeps SQLite's automatic checkpoints.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_module
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import AdaptedConnection
from sqlalchemy.util import parse_version_string
from sqlalchemy.util.concurrency import await_

__all__ = [
    "BUSY_TIMEOUT_SECONDS",
    "DRIVER",
    "GateHolder",
    "InlineConnection",
    "InlineUnit",
    "SQLiteDialect_inline",
    "WriteGate",
]

#: The driver name: ``sqlite+inline:///path/to/file.db``.
DRIVER = "inline"

#: How long a statement may wait for the write gate and for other processes' locks, in total:
#: the ``busy_timeout`` (5000 ms) aiosqlite connections are given.
BUSY_TIMEOUT_SECONDS = 5.0

#: Pauses between retries of a busy statement: SQLite's own busy handler's schedule (seconds).
_BUSY_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05)
_BUSY_DELAY_MAX = 0.1

_SQLITE_BUSY = 5
_SQLITE_BUSY_SNAPSHOT = 517  # SQLITE_BUSY | (2 << 8)

_T = TypeVar("_T")

#: Statements (by their first word) that take no write gate. A ``PRAGMA`` is let through too:
#: the few that write (``journal_mode`` on a new file) are short, and retried when busy.
_UNGATED_VERBS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "BEGIN"})
#: A ``BEGIN`` that takes the write lock at once takes the gate first.
_LOCKING_BEGINS = frozenset({"IMMEDIATE", "EXCLUSIVE"})

READ, WRITE, BEGIN = "read", "write", "begin"
_classified: dict[str, str] = {}


def classify(statement: str) -> str:
    """:data:`WRITE` when ``statement`` may write (conservatively: anything not known to be a
    read), :data:`BEGIN` for a deferred ``BEGIN`` (takes no lock), else :data:`READ`."""
    kind = _classified.get(statement)
    if kind is not None:
        return kind
    words = statement.split(None, 2)
    verb = words[0].upper() if words else ""
    if verb not in _UNGATED_VERBS:
        kind = WRITE
    elif verb == "BEGIN":
        locking = len(words) > 1 and words[1].upper().rstrip(";") in _LOCKING_BEGINS
        kind = WRITE if locking else BEGIN
    else:
        kind = READ
    if len(_classified) < 4096:  # compiled statements are few; ad hoc text must not grow it
        _classified[statement] = kind
    return kind


def _is_retryable_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:  # pragma: no cover - Python < 3.11 has no error codes
        return "database is locked" in str(error)
    return bool(code & 0xFF == _SQLITE_BUSY and code != _SQLITE_BUSY_SNAPSHOT)


class GateHolder(Protocol):
    """What may hold a :class:`WriteGate`: a connection, or the WAL checkpointer
    (:mod:`bastion.storage.wal`), which keeps this process's writers out while it runs."""

    def is_idle(self) -> bool:
        """Whether it holds no SQLite lock (a stale holder that is idle loses the gate)."""
        ...


class WriteGate:
    """One writer at a time among this process's connections to one database file.

    Held from a connection's first writing statement to the end of its transaction (or by the
    WAL checkpointer while it checkpoints). Waiters are served in arrival order; the gate is
    handed directly to the next waiter on release. Belongs to one event loop (see
    :func:`write_gate`).
    """

    __slots__ = ("_holder", "_waiters")

    def __init__(self) -> None:
        self._holder: weakref.ref[GateHolder] | None = None
        self._waiters: collections.deque[tuple[asyncio.Future[None], GateHolder]] = (
            collections.deque()
        )

    @property
    def holder(self) -> GateHolder | None:
        return self._holder() if self._holder is not None else None

    @property
    def waiting(self) -> int:
        """How many connections wait for the gate."""
        return sum(not future.done() for future, _ in self._waiters)

    def try_take(self, connection: GateHolder) -> bool:
        """Take the gate if it is free and nobody queues for it."""
        if self._holder is not None and self._holder() is None:
            # The holder was garbage collected without a release (its SQLite connection,
            # closed with it, holds no lock any more): the gate moves on.
            self._holder = None
            self._hand_over()
        if self._holder is None and not self._waiters:
            self._holder = weakref.ref(connection)
            return True
        return False

    async def take(self, connection: GateHolder, deadline: float) -> None:
        """Wait for the gate until ``deadline`` (loop time). Raises TimeoutError."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (future, connection)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout_at(deadline):
                await future
        except BaseException as error:
            if future.done() and not future.cancelled():
                # Handed over just as the wait was cancelled or timed out: pass it on.
                self.release(connection)
            else:
                future.cancel()
                self._waiters.remove(entry)
                if isinstance(error, TimeoutError) and self._take_from_stale(connection):
                    return
            raise

    def _take_from_stale(self, connection: GateHolder) -> bool:
        # A safety net: the holder was dropped without its transaction ending through this
        # module (garbage collected, or closed by other means). Its lock is gone with it.
        holder = self.holder
        if holder is None or holder.is_idle():
            self._holder = weakref.ref(connection)
            return True
        return False

    def release(self, connection: GateHolder) -> None:
        """Release the gate if ``connection`` holds it, handing it to the next waiter."""
        if self.holder is not connection:
            return
        self._holder = None
        self._hand_over()

    def _hand_over(self) -> None:
        while self._waiters:
            future, waiter = self._waiters.popleft()
            if not future.done():
                self._holder = weakref.ref(waiter)
                future.set_result(None)
                return


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, WriteGate]] = (
    weakref.WeakKeyDictionary()
)


def write_gate(database: str) -> WriteGate:
    """The running loop's gate for ``database`` (a file path, or a URI)."""
    loop = asyncio.get_running_loop()
    per_loop = _gates.get(loop)
    if per_loop is None:
        per_loop = _gates[loop] = {}
    gate = per_loop.get(database)
    if gate is None:
        gate = per_loop[database] = WriteGate()
    return gate


class InlineConnection(AdaptedConnection):
    """A :mod:`sqlite3` connection behind SQLAlchemy's async-adapted DBAPI interface.

    Every call runs synchronously on the caller's (the event loop's) thread; it only suspends
    (through SQLAlchemy's greenlet bridge) to wait for the write gate or to back off from a
    busy database.
    """

    __slots__ = (
        "__weakref__",
        "_busy",
        "_changes",
        "_direct",
        "_gate",
        "_holds_gate",
        "_loop",
        "_prepared",
        "_snapshot",
        "on_write",
        "sqlite",
    )

    def __init__(self, connection: sqlite3.Connection, gate: WriteGate | None) -> None:
        self._connection = connection  # type: ignore[assignment] # SQLAlchemy's driver_connection
        self.sqlite = connection
        self._gate = gate
        self._loop = asyncio.get_running_loop()
        self._holds_gate = False
        self._busy = False  # inside a call (possibly backing off)
        self._snapshot = False  # the open transaction has run a statement
        self._direct = False  # inside direct(): no await required of a call that need not wait
        self._changes = connection.total_changes
        self._prepared: sqlite3.Cursor | None = None  # see fetch()
        #: Called on the loop after each write transaction ends, with the gate and the number
        #: of rows it changed (the WAL checkpointer counts the WAL's growth with it).
        self.on_write: Callable[[WriteGate, int], None] | None = None

    @property
    def gate(self) -> WriteGate | None:
        """This connection's write gate (None for an in-memory database)."""
        return self._gate

    # -- the gate and the busy retries ---------------------------------------------------
    def _in_transaction(self) -> bool:
        try:
            return self.sqlite.in_transaction
        except sqlite3.ProgrammingError:  # closed
            return False

    def is_idle(self) -> bool:
        """Not inside a call and not in a transaction (so holding no SQLite lock)."""
        return not self._busy and not self._in_transaction()

    def _settle(self, *, reads: bool = True) -> None:
        """After a call: release the gate once SQLite is back in autocommit. ``reads``: the
        call may have started a read snapshot (anything but a deferred ``BEGIN``)."""
        if self._in_transaction():
            self._snapshot = self._snapshot or reads
            return
        self._snapshot = False
        if self._holds_gate:
            self._holds_gate = False
            if self._gate is not None:
                self._gate.release(self)
                if self.on_write is not None:
                    self._wrote(self.on_write, self._gate)

    def _wrote(self, on_write: Callable[[WriteGate, int], None], gate: WriteGate) -> None:
        try:
            changes = self.sqlite.total_changes
        except sqlite3.ProgrammingError:  # closed: nothing more will be written through it
            return
        rows, self._changes = changes - self._changes, changes
        on_write(gate, rows)

    async def _take_gate(self, deadline: float) -> None:
        gate = self._gate
        if gate is None or self._holds_gate:
            return
        if not gate.try_take(self):
            try:
                await gate.take(self, deadline)
            except TimeoutError:
                raise sqlite3.OperationalError("database is locked") from None
        self._holds_gate = True

    async def call_async(self, call: Callable[[], _T], kind: str = READ) -> _T:
        """Run ``call`` (one SQLite operation of :func:`classify`'s ``kind``); retry it while
        the database is busy, if it is safe to. Suspends only to wait for the write gate or
        to back off."""
        deadline = self._loop.time() + BUSY_TIMEOUT_SECONDS
        retry = not self._snapshot
        self._busy = True
        try:
            if kind == WRITE:
                await self._take_gate(deadline)
            try:
                return call()
            except sqlite3.OperationalError as error:
                if not retry or not _is_retryable_busy(error):
                    raise
                busy = error
            return await self._retry(call, deadline, busy)
        finally:
            self._busy = False
            self._settle(reads=kind != BEGIN)

    async def _retry(
        self, call: Callable[[], _T], deadline: float, busy: sqlite3.OperationalError
    ) -> _T:
        """Retry a call that met a busy database (``busy``), backing off, until ``deadline``;
        then the last busy error is raised."""
        delays = iter(_BUSY_DELAYS)
        while True:
            left = deadline - self._loop.time()
            if left <= 0:
                raise busy
            await asyncio.sleep(min(next(delays, _BUSY_DELAY_MAX), left))
            try:
                return call()
            except sqlite3.OperationalError as error:
                if not _is_retryable_busy(error):
                    raise
                busy = error

    def run(self, call: Callable[[], _T], kind: str = READ) -> _T:
        """:meth:`call_async` from SQLAlchemy's synchronous side (inside its greenlet). The
        coroutine completes without suspending unless it must wait; SQLAlchemy's async layer
        also requires each ``execute`` to pass through an await, except inside
        :func:`direct`, where a call that need not wait (no gate to wait for, the database not
        busy) is made straight away, without the round trip through the event loop's side."""
        if not self._direct or not self._gate_free(kind):
            return await_(self.call_async(call, kind))
        retry = not self._snapshot
        self._busy = True
        try:
            try:
                return call()
            except sqlite3.OperationalError as error:
                if not retry or not _is_retryable_busy(error):
                    raise
                busy = error
            deadline = self._loop.time() + BUSY_TIMEOUT_SECONDS
            return await_(self._retry(call, deadline, busy))
        finally:
            self._busy = False
            self._settle(reads=kind != BEGIN)

    def _gate_free(self, kind: str) -> bool:
        """Whether a ``kind`` call may run without waiting: it needs no gate, holds it, or
        took it now."""
        if kind != WRITE or self._holds_gate or self._gate is None:
            return True
        if self._gate.try_take(self):
            self._holds_gate = True
            return True
        return False

    def fetch(self, operation: str, parameters: Sequence[Any]) -> tuple[list[Any], Any]:
        """Run one statement and fetch all its rows: ``(rows, description)``. What a cursor's
        ``execute``, ``fetchall`` and ``description`` give, under the same gate, busy retries
        and settling (:meth:`run`), on one SQLite cursor kept for the purpose instead of a
        cursor object per statement (:class:`~bastion.storage.prepared.PreparedStatement`'s
        way in). The rows are all fetched, so the statement is reset when this returns; a
        statement that fails takes its cursor with it (closed, so nothing stays active)."""
        cursor = self._prepared
        if cursor is None:
            cursor = self._prepared = self.sqlite.cursor()

        def call() -> tuple[list[Any], Any]:
            cursor.execute(operation, parameters)
            description = cursor.description
            return (cursor.fetchall() if description is not None else []), description

        try:
            return self.run(call, classify(operation))
        except BaseException:
            self._prepared = None
            cursor.close()
            raise

    # -- a whole write transaction in one call ------------------------------------------
    def try_unit(self, work: Callable[[InlineUnit], _T | None], dialect: Any) -> _T | None:
        """Run ``work`` as one write transaction, synchronously, when it need not wait: its
        statements (through the :class:`InlineUnit` it is given) then the commit, in one call
        on the loop's thread, with no greenlet and no await. None (nothing written: rolled
        back) when it could not run so: the connection busy or in a transaction, the write
        gate held or queued for, a database error of any kind (a busy database included),
        or ``work`` itself returning None (it met a case it leaves to the caller's ordinary
        path). The caller then takes that ordinary path (:meth:`run`'s gate waits, busy
        retries and error handling), which starts over.

        The same transaction as the ordinary path's: the same connection, pragmas and
        durability, SQLite's deferred ``BEGIN`` before the first write (so a unit must start
        with a write, as a rotation does), the write gate held until it ends, and the
        checkpointer told of it (:attr:`on_write`) as any write transaction."""
        sqlite = self.sqlite
        if self._busy or self._gate is None or sqlite.isolation_level is None:
            return None  # autocommit would commit each statement on its own
        if self._in_transaction() or not self._gate.try_take(self):
            return None
        self._holds_gate = True
        self._busy = True
        cursor = self._prepared
        if cursor is None:
            cursor = self._prepared = sqlite.cursor()
        committed = False
        try:
            result = work(InlineUnit(cursor, dialect))
            if result is not None:
                sqlite.commit()
                committed = True
                return result
        except sqlite3.Error:
            self._prepared = None  # a failed statement takes its cursor with it
            cursor.close()
        finally:
            try:
                if not committed:
                    sqlite.rollback()
            finally:
                self._busy = False
                self._settle()
        return None

    def try_read(self, work: Callable[[InlineUnit], _T | None], dialect: Any) -> _T | None:
        """Run ``work``'s reads synchronously, in autocommit (each ``SELECT`` sees the latest
        commit, as a read on a pooled connection does), with no greenlet and no await. None
        when it could not run so: the connection busy or in a transaction, a database error
        of any kind (a busy database included), a statement that may write (refused before it
        runs: a read takes no write gate), or ``work`` itself returning None. The caller then
        takes its ordinary path (:meth:`run`'s busy retries and error handling)."""
        if self._busy or self._in_transaction():
            return None
        self._busy = True
        cursor = self._prepared
        if cursor is None:
            cursor = self._prepared = self.sqlite.cursor()
        try:
            return work(_ReadUnit(cursor, dialect))
        except sqlite3.Error:
            self._prepared = None  # a failed statement takes its cursor with it
            cursor.close()
        finally:
            try:
                if self._in_transaction():  # reads never begin one; no snapshot may outlive
                    self.sqlite.rollback()
            finally:
                self._busy = False
                self._settle()
        return None

    # -- the DBAPI connection ------------------------------------------------------------
    def cursor(self, server_side: bool = False) -> InlineCursor:
        return InlineServerSideCursor(self) if server_side else InlineCursor(self)

    def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        cursor = self.cursor()
        cursor.execute(operation, parameters)
        return cursor

    def commit(self) -> None:
        self.run(self.sqlite.commit)

    def rollback(self) -> None:
        try:
            self.sqlite.rollback()
        finally:
            self._settle()

    def close(self) -> None:
        self._prepared = None
        try:
            self.sqlite.close()
        finally:
            self._snapshot = False
            if self._holds_gate and self._gate is not None:
                self._holds_gate = False
                self._release_from_any_thread(self._gate)

    def _release_from_any_thread(self, gate: WriteGate) -> None:
        # A pool may close a connection from elsewhere (garbage collection, disposal at exit);
        # the gate's futures belong to the connection's loop.
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop or self._loop.is_closed():
            gate.release(self)
        else:
            self._loop.call_soon_threadsafe(gate.release, self)

    def terminate(self) -> None:
        self.close()

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self.sqlite.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self.sqlite.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        # Setting it may commit an open transaction.
        try:
            self.sqlite.isolation_level = value  # type: ignore[assignment]
        finally:
            self._settle()

    @property
    def in_transaction(self) -> bool:
        return self.sqlite.in_transaction


class direct:  # noqa: N801 - a context manager used as a function, as it was one
    """Within the block, calls on ``connection`` (a SQLAlchemy ``Connection``; any other
    driver's is left alone) that need not wait run without an await: for units of work run
    in one greenlet through SQLAlchemy's synchronous API (``Database.read``), which, unlike
    ``AsyncConnection``, does not require one. (A class, not a generator: entered on every
    unit of work, where a generator's context manager costs several calls more.)"""

    __slots__ = ("_inline",)

    def __init__(self, connection: Any) -> None:
        inline = connection.connection.dbapi_connection
        self._inline = inline if isinstance(inline, InlineConnection) else None

    def __enter__(self) -> None:
        if self._inline is not None:
            self._inline._direct = True  # noqa: SLF001 - this module's own class

    def __exit__(self, *_exc: object) -> None:
        if self._inline is not None:
            self._inline._direct = False  # noqa: SLF001


class InlineUnit:
    """What a unit of :meth:`InlineConnection.try_unit` runs its statements with."""

    __slots__ = ("_cursor", "dialect")

    def __init__(self, cursor: sqlite3.Cursor, dialect: Any) -> None:
        self._cursor = cursor
        #: The SQLAlchemy dialect the statements are compiled for.
        self.dialect = dialect

    def fetch(self, operation: str, parameters: Sequence[Any]) -> tuple[list[Any], Any]:
        """Run one statement and fetch all its rows: ``(rows, description)``."""
        cursor = self._cursor
        cursor.execute(operation, parameters)
        description = cursor.description
        return (cursor.fetchall() if description is not None else []), description


class _ReadUnit(InlineUnit):
    """The unit of :meth:`InlineConnection.try_read`: reads only."""

    __slots__ = ()

    def fetch(self, operation: str, parameters: Sequence[Any]) -> tuple[list[Any], Any]:
        if classify(operation) != READ:
            # Refused before it runs: it would write without the write gate.
            raise sqlite3.ProgrammingError("a read unit runs reads only")
        return InlineUnit.fetch(self, operation, parameters)


class InlineCursor:
    """A cursor whose rows are fetched when the statement runs (the statement is then reset,
    so no read snapshot outlives the call), as SQLAlchemy's aiosqlite adapter does."""

    server_side = False
    __slots__ = ("_adapted", "_cursor", "_rows", "arraysize")

    def __init__(self, adapted: InlineConnection) -> None:
        self._adapted = adapted
        self._cursor = adapted.sqlite.cursor()
        self._rows: collections.deque[Any] = collections.deque()
        self.arraysize = 1

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    def _execute(self, operation: str, parameters: Any) -> None:
        cursor = self._cursor
        cursor.execute(operation, parameters)
        if cursor.description is not None:
            self._rows = collections.deque(cursor.fetchall())

    def execute(self, operation: str, parameters: Any = None) -> None:
        params = () if parameters is None else parameters
        self._adapted.run(lambda: self._execute(operation, params), classify(operation))

    def executemany(self, operation: str, seq_of_parameters: Any) -> None:
        cursor = self._cursor
        self._adapted.run(
            lambda: cursor.executemany(operation, seq_of_parameters),
            classify(operation),
        )

    async def _async_soft_close(self) -> None:
        """Called by SQLAlchemy's async results: the rows are already fetched."""

    def close(self) -> None:
        self._rows.clear()
        self._cursor.close()

    def setinputsizes(self, *_sizes: Any) -> None:
        return None

    def setoutputsize(self, *_args: Any) -> None:
        return None

    def nextset(self) -> None:
        return None

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._rows
        return [rows.popleft() for _ in range(min(size or self.arraysize, len(rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows


class InlineServerSideCursor(InlineCursor):
    """For ``AsyncConnection.stream()``: rows are read from SQLite batch by batch (each
    ``fetchmany`` a short inline call), so a long scan never holds the loop for long."""

    server_side = True
    __slots__ = ()

    def _execute(self, operation: str, parameters: Any) -> None:
        self._cursor.execute(operation, parameters)

    def fetchone(self) -> Any:
        return self._adapted.run(self._cursor.fetchone)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or self.arraysize
        return self._adapted.run(lambda: self._cursor.fetchmany(count))

    def fetchall(self) -> list[Any]:
        return self._adapted.run(self._cursor.fetchall)

    def __iter__(self) -> Iterator[Any]:
        while row := self.fetchone():
            yield row


class _InlineDBAPI(AsyncAdapt_dbapi_module):
    """The ``dbapi`` module SQLAlchemy sees: :mod:`sqlite3`'s names, and an inline connect."""

    def __init__(self) -> None:
        super().__init__(sqlite3, dbapi_module=sqlite3)
        self.sqlite = sqlite3
        self.has_stop = True
        self.paramstyle = "qmark"
        for name in (
            "DatabaseError",
            "Error",
            "IntegrityError",
            "InterfaceError",
            "NotSupportedError",
            "OperationalError",
            "ProgrammingError",
            "InternalError",
            "DataError",
            "Warning",
            "sqlite_version",
            "sqlite_version_info",
            "PARSE_COLNAMES",
            "PARSE_DECLTYPES",
            "Binary",
        ):
            setattr(self, name, getattr(sqlite3, name))

    def connect(self, database: str, **kwargs: Any) -> InlineConnection:
        # SQLite must never sleep on the loop thread: busy waits are retried in run().
        kwargs["timeout"] = 0
        # Pooled connections may be closed from another thread (pool disposal at exit).
        kwargs["check_same_thread"] = False
        connection = sqlite3.connect(database, **kwargs)
        memory = database == ":memory:" or "mode=memory" in database
        gate = None if memory else write_gate(database)
        return InlineConnection(connection, gate)


class SQLiteDialect_inline(SQLiteDialect_aiosqlite):  # noqa: N801 - SQLAlchemy's naming
    """SQLAlchemy's aiosqlite dialect (SQL, types, pooling) over :class:`InlineConnection`."""

    driver = DRIVER
    supports_statement_cache = True
    is_async = True
    has_terminate = True
    supports_server_side_cursors = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _InlineDBAPI()

    def retrieve_dbapi_version(self, dbapi: Any) -> Any:  # noqa: ARG002 - sqlite3's
        return parse_version_string(sqlite3.sqlite_version)

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        closed = isinstance(e, sqlite3.ProgrammingError) and "closed database" in str(e).lower()
        return closed or super().is_disconnect(e, connection, cursor)

    def get_driver_connection(self, connection: Any) -> Any:
        return connection.sqlite

    def do_terminate(self, dbapi_connection: Any) -> None:
        dbapi_connection.terminate()


registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_inline")
