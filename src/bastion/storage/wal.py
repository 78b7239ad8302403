"""WAL checkpoints off the event loop, for databases on the ``sqlite+inline`` driver.

Why. In WAL mode a commit appends pages to the ``-wal`` file; a *checkpoint* copies them back
into the database file, with an ``fsync`` of each (the only syncs with ``synchronous=NORMAL``).
SQLite runs one automatically inside the commit that takes the WAL past 1000 pages: on the
inline driver, on the event loop's thread, where the copy and the two syncs stall every
request in flight (tens of milliseconds on a busy disk, measured with
``bench/audit/loopcalls.py``).

So inline connections of a :class:`~bastion.storage.Database` run with
``PRAGMA wal_autocheckpoint=0`` and the database's :class:`WalCheckpointer` does the work:

* The driver reports every write transaction that ends (with the rows it changed). Each counts
  :data:`TRANSACTION_UNITS` plus its rows; past :data:`CHECKPOINT_UNITS` (about SQLite's own
  1000 pages for one-row transactions, sooner for bulk writes), one checkpoint is started.
* A checkpoint is ``PRAGMA wal_checkpoint(PASSIVE)`` on its own stdlib :mod:`sqlite3`
  connection, in a worker thread (:func:`asyncio.to_thread`): the loop only starts it and
  collects the result. PASSIVE, as SQLite's auto-checkpoint: it never waits for, nor locks
  out, readers or writers of any process. It syncs the WAL, copies the pages it holds into the
  database file and syncs that, while this process's writers go on: as often as SQLite's own
  checkpoint, so a commit is exposed to a power loss or an OS crash for as long as before
  (``synchronous=NORMAL``: commits survive a crash of the process at once, and the others once
  a checkpoint synced the WAL).
* Every :data:`RESTART_EVERY` th checkpoint then runs a second pass holding the process's write
  gate (:class:`~bastion.storage.sqlite_inline.WriteGate`), for at most
  :data:`MAX_GATE_HOLD_SECONDS`: it copies what was committed during the first (and syncs both
  files again) while this process's writers wait for it on the gate (asynchronously: requests
  that do not write go on), so it is not overtaken by new commits and copies the whole WAL, and
  the next commit starts the WAL over from its beginning. Without that, on a loop that commits
  continuously, the WAL would never be fully copied and would grow without bound; with it the
  WAL stays within about :data:`RESTART_EVERY` times :data:`CHECKPOINT_UNITS` pages (16 MiB of
  4 KiB pages, ~20 MiB measured under refresh rotations at 32 connections), which is also what
  recovery reads after a crash. Writers wait only for that pass, and a quarter as often:
  measured on refresh rotations at 32 connections, the gate was held 14 % of the time when
  every checkpoint held it from start to end (one pass every 1000 units), 7-10 % with two
  passes every time, 1.7-2.0 % so (see docs/benchmarks.md, refresh8).
* :meth:`~bastion.storage.Database.transaction` waits for such a pass
  (:attr:`WalCheckpointer.holding`, :meth:`WalCheckpointer.released`) *before* it takes a
  connection, so the units of work that arrive meanwhile run one after another on its kept
  connection afterwards, instead of each checking out a pooled connection to wait on the gate
  with (see there).
* :meth:`WalCheckpointer.close` (from :meth:`Database.dispose`) waits for a running
  checkpoint, then runs ``PRAGMA wal_checkpoint(TRUNCATE)`` in a thread without waiting for
  locks (it falls back to PASSIVE when another process writes), leaving an empty WAL.

Several processes on one file: each runs its own checkpointer for its own commits; SQLite
serializes checkpoints between processes (one that finds another running returns at once), and
a PASSIVE checkpoint is safe beside any reader or writer. A reader that keeps an old snapshot
(a long scan) stops every checkpoint at its snapshot, as it stopped SQLite's own.

Errors of a checkpoint are logged (class name only) and otherwise ignored: the next one
retries, and the WAL stays correct whatever a checkpoint did.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from bastion.logging import get_logger
from bastion.storage.sqlite_inline import WriteGate

__all__ = [
    "CHECKPOINT_UNITS",
    "INLINE_WAL_PRAGMA",
    "MAX_GATE_HOLD_SECONDS",
    "RESTART_EVERY",
    "TRANSACTION_UNITS",
    "WalCheckpointer",
]

#: Turns SQLite's automatic checkpoints (inside a commit, on the loop thread) off.
INLINE_WAL_PRAGMA = "PRAGMA wal_autocheckpoint=0"
#: What one write transaction counts, plus one per row it changed: a commit writes each page it
#: changed (a table leaf, one per index, the parents of a split) to the WAL.
TRANSACTION_UNITS = 3
#: Units after which a checkpoint starts.
CHECKPOINT_UNITS = 1000
#: One checkpoint in this many ends with the pass that holds the write gate and lets the next
#: commit start the WAL over (the others leave the WAL growing; it is copied up to its end).
RESTART_EVERY = 4
#: How long this process's writers may be kept waiting by one checkpoint; it goes on without
#: the gate afterwards (still correct, but commits may then overtake it).
MAX_GATE_HOLD_SECONDS = 1.0

_PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"
_TRUNCATE = "PRAGMA wal_checkpoint(TRUNCATE)"

logger = get_logger("bastion.storage.wal")


class _Checkpointing:
    """The write gate's holder while a checkpoint runs."""

    __slots__ = ("__weakref__",)

    def is_idle(self) -> bool:
        return False  # holds the gate on purpose, never stale


class WalCheckpointer:
    """Checkpoints one SQLite database file's WAL in a worker thread (see the module docstring).

    :meth:`wrote` is the driver's ``on_write`` hook; :attr:`units` is the write units after which
    a checkpoint starts; :attr:`runs` counts the checkpoints completed and :attr:`last` holds
    the last one's ``(busy, wal frames, frames copied)``.
    """

    def __init__(self, path: Path, *, units: int = CHECKPOINT_UNITS) -> None:
        # A URI in read-write mode: a checkpoint must never create a missing database file.
        self._uri = path.absolute().as_uri() + "?mode=rw"
        self.units = units
        #: See :data:`RESTART_EVERY`.
        self.restart_every = RESTART_EVERY
        self._started = 0  # checkpoints started
        self._due = 0
        self._dirty = False  # written to since the last checkpoint started
        self._task: asyncio.Task[None] | None = None
        #: Its own connection, used in worker threads only, one at a time (the lock).
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.runs = 0
        self.last: tuple[int, int, int] | None = None
        #: While a checkpoint waits for or holds the write gate: a future done when it lets go
        #: of it (:meth:`~bastion.storage.Database.transaction` waits for it before taking a
        #: connection), else None.
        self.holding: asyncio.Future[None] | None = None

    def wrote(self, gate: WriteGate, rows: int) -> None:
        """A write transaction ended (on the loop); start a checkpoint when one is due."""
        self._due += TRANSACTION_UNITS + rows
        self._dirty = True
        if self._due < self.units or self._task is not None:
            return
        self._due = 0
        self._dirty = False
        self._task = asyncio.get_running_loop().create_task(
            self._checkpoint(gate), name="bastion-sqlite-checkpoint"
        )
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None

    async def _checkpoint(self, gate: WriteGate) -> None:
        # Without the gate (writers go on): the WAL is synced, copied and the database synced.
        first = asyncio.ensure_future(asyncio.to_thread(self._run, _PASSIVE))
        self._started += 1
        if self._started % self.restart_every:
            await self._collect(first)
            return
        await self._collect(first, count=False)
        # From its wait for the gate to its release: units of work of the Database wait for
        # it holding no connection (see :attr:`holding`).
        released = self.holding = asyncio.get_running_loop().create_future()
        try:
            work = await self._checkpoint_holding_gate(gate)
        finally:
            self.holding = None
            released.set_result(None)
        if work is not None:
            await self._collect(work)

    async def _checkpoint_holding_gate(
        self, gate: WriteGate
    ) -> asyncio.Future[tuple[int, int, int] | None] | None:
        """Takes the gate, starts the checkpoint in a thread and releases the gate when it
        ends or after :data:`MAX_GATE_HOLD_SECONDS`; returns the thread's work (None: writers
        kept the gate all along)."""
        holder = _Checkpointing()
        loop = asyncio.get_running_loop()
        if not gate.try_take(holder):
            try:
                await gate.take(holder, loop.time() + MAX_GATE_HOLD_SECONDS)
            except TimeoutError:
                # Writers kept the gate all along: the next write transaction tries again.
                self._due = max(self._due, self.units)
                self._dirty = True
                return None
        # What the gated pass copies: everything written so far.
        self._due = 0
        self._dirty = False
        work = asyncio.ensure_future(asyncio.to_thread(self._run, _PASSIVE))
        try:
            await asyncio.wait((work,), timeout=MAX_GATE_HOLD_SECONDS)
        finally:
            gate.release(holder)
        return work

    async def _collect(
        self, work: asyncio.Future[tuple[int, int, int] | None], *, count: bool = True
    ) -> None:
        try:
            last = await work
        except Exception as error:  # noqa: BLE001 - a failed checkpoint must fail nothing else
            # The class name only: a driver's message may quote a path.
            logger.warning("sqlite_checkpoint_failed", error=type(error).__name__)
        else:
            if count:
                self.last = last
                self.runs += 1

    def _run(self, statement: str, *, close: bool = False) -> tuple[int, int, int] | None:
        """In a worker thread: one checkpoint on the checkpointer's own connection (opened
        once: a new connection would also sync the directory when it first syncs the WAL)."""
        with self._lock:
            try:
                if self._connection is None:
                    # timeout=0: never wait for a lock (TRUNCATE falls back to PASSIVE).
                    self._connection = sqlite3.connect(
                        self._uri,
                        uri=True,
                        timeout=0,
                        isolation_level=None,
                        check_same_thread=False,
                    )
                row = self._connection.execute(statement).fetchone()
            finally:
                if close and self._connection is not None:
                    self._connection.close()
                    self._connection = None
        return (int(row[0]), int(row[1]), int(row[2])) if row else None

    async def released(self) -> bool:
        """If a checkpoint of this loop waits for or holds the write gate, wait until it lets
        go of it (shielded: a cancelled waiter cancels nobody else's wait); whether there was
        one. A unit of work that found the gate held by it can then run as it would have."""
        holding = self.holding
        if holding is None or holding.get_loop() is not asyncio.get_running_loop():
            return False
        await asyncio.shield(holding)
        return True

    async def idle(self) -> None:
        """Wait for a running checkpoint (started on this loop) to end."""
        task = self._task
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(task)

    async def close(self) -> None:
        """Wait for a running checkpoint; then, if this process wrote since the last one,
        checkpoint and truncate the WAL (in a thread). Closes the checkpointer's connection;
        it is opened again if the database is used again."""
        await self.idle()
        self._due = 0
        if self._dirty:
            self._dirty = False
            run = asyncio.to_thread(self._run, _TRUNCATE, close=True)
            await self._collect(asyncio.ensure_future(run))
        elif self._connection is not None:
            await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
