"""The ``sqlite+inline`` driver: SQLite on the loop's thread must never stall the loop on a lock.

The hazards: a writer while another coroutine of the process holds SQLite's write lock and is
suspended on a non-database await (with SQLite's busy handler sleeping on the loop thread, the
holder could never resume: a self-deadlock until busy_timeout); other processes holding the lock;
a transaction that read before writing (SQLITE_BUSY_SNAPSHOT); cancelled waiters.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from bastion.storage import Database, sqlite_inline
from bastion.storage.prepared import PreparedStatement
from bastion.storage.sqlite_inline import BEGIN, READ, WRITE, WriteGate, classify, write_gate

counters = Table(
    "counters",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("n", Integer, nullable=False),
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "inline.db"


@pytest.fixture
async def db(path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{path}")
    assert database.url.drivername == "sqlite+inline"
    async with database.engine.begin() as connection:
        await connection.run_sync(counters.metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


async def ids(db: Database) -> list[int]:
    async with db.session() as session:
        return list(
            (await session.execute(select(counters.c.id).order_by(counters.c.id))).scalars()
        )


@asynccontextmanager
async def loop_watch() -> AsyncIterator[list[float]]:
    """Records the longest gap between ticks of a 10 ms ticker: a loop stalled inside SQLite
    shows up as a long gap."""
    longest = [0.0]

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            longest[0] = max(longest[0], loop.time() - before)

    task = asyncio.get_running_loop().create_task(tick())
    await asyncio.sleep(0.02)  # the ticker is running
    try:
        yield longest
    finally:
        task.cancel()


def gate_of(path: Path) -> WriteGate:
    # The dialect opens os.path.abspath(database); tmp_path holds no symlinks to resolve.
    return write_gate(str(path.absolute()))


@pytest.mark.timing  # measures the loop's longest stall: run alone, not beside the parallel suite
async def test_a_writer_queues_behind_a_suspended_writer_and_the_loop_runs_on(
    db: Database, path: Path
) -> None:
    wrote = asyncio.Event()
    resume = asyncio.Event()

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=1, n=1))
            wrote.set()
            await resume.wait()  # holds SQLite's write lock across a non-database await

    async def second() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=2, n=2))

    first_task = asyncio.create_task(holder())
    await wrote.wait()
    async with loop_watch() as longest:
        second_task = asyncio.create_task(second())
        await asyncio.sleep(0.1)
        assert not second_task.done()
        assert gate_of(path).waiting == 1  # waits on the gate, not inside SQLite
        resume.set()  # only possible because the loop is free
        await asyncio.wait_for(asyncio.gather(first_task, second_task), 3)
    assert longest[0] < 0.5
    assert await ids(db) == [1, 2]


async def test_two_engines_on_one_file_share_the_gate(db: Database, path: Path) -> None:
    other = Database(f"sqlite:///{path}")
    wrote = asyncio.Event()
    resume = asyncio.Event()

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=1, n=1))
            wrote.set()
            await resume.wait()

    async def second() -> None:
        async with other.session() as session:
            await session.execute(insert(counters).values(id=2, n=2))

    try:
        first_task = asyncio.create_task(holder())
        await wrote.wait()
        second_task = asyncio.create_task(second())
        await asyncio.sleep(0.05)
        assert gate_of(path).waiting == 1
        resume.set()
        await asyncio.wait_for(asyncio.gather(first_task, second_task), 3)
    finally:
        await other.dispose()
    assert await ids(db) == [1, 2]


async def test_queued_writers_are_served_in_arrival_order(db: Database) -> None:
    wrote = asyncio.Event()
    resume = asyncio.Event()
    order: list[int] = []

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=100, n=0))
            wrote.set()
            await resume.wait()

    async def writer(number: int) -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=number, n=number))
            await asyncio.sleep(0)  # suspended inside the transaction too
        order.append(number)

    first_task = asyncio.create_task(holder())
    await wrote.wait()
    writers = []
    for number in range(5):
        writers.append(asyncio.create_task(writer(number)))
        await asyncio.sleep(0.01)
    resume.set()
    await asyncio.wait_for(asyncio.gather(first_task, *writers), 5)
    assert order == [0, 1, 2, 3, 4]


async def test_readers_do_not_wait_for_a_suspended_writer(db: Database) -> None:
    async with db.session() as session:
        await session.execute(insert(counters).values(id=1, n=1))
    wrote = asyncio.Event()
    resume = asyncio.Event()

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(update(counters).values(n=2))
            wrote.set()
            await resume.wait()

    task = asyncio.create_task(holder())
    await wrote.wait()
    async with db.session() as session:
        seen = (await asyncio.wait_for(session.execute(select(counters.c.n)), 1)).scalar_one()
    assert seen == 1  # WAL: the committed value, at once
    resume.set()
    await task


@pytest.mark.timing  # measures the loop's longest stall: run alone, not beside the parallel suite
async def test_a_lock_held_elsewhere_is_waited_for_without_blocking_the_loop(
    db: Database, path: Path
) -> None:
    # A connection outside the driver (as another process's would be) holds the write lock;
    # the loop itself releases it later: a loop asleep in SQLite's busy handler never would.
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        started = time.monotonic()
        async with loop_watch() as longest, db.session() as session:
            await session.execute(insert(counters).values(id=1, n=1))
        elapsed = time.monotonic() - started
    finally:
        other.close()
    assert 0.25 <= elapsed < 3
    assert longest[0] < 0.25
    assert await ids(db) == [1]


@pytest.mark.timing  # measures the loop's longest stall: run alone, not beside the parallel suite
async def test_a_lock_never_released_fails_after_the_busy_timeout(
    db: Database, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT_SECONDS", 0.3)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        async with loop_watch() as longest:
            with pytest.raises(OperationalError, match="database is locked"):
                async with db.session() as session:
                    await session.execute(insert(counters).values(id=1, n=1))
        elapsed = time.monotonic() - started
    finally:
        other.close()
    assert 0.25 <= elapsed < 2
    assert longest[0] < 0.25
    # The failed transaction left the gate free.
    async with db.session() as session:
        await session.execute(insert(counters).values(id=2, n=2))
    assert await ids(db) == [2]


async def test_a_second_write_transaction_in_the_same_task_fails_instead_of_hanging(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As with aiosqlite (busy_timeout): the inner writer cannot get the lock its own task holds.
    monkeypatch.setattr(sqlite_inline, "BUSY_TIMEOUT_SECONDS", 0.3)
    async with db.session() as outer:
        await outer.execute(insert(counters).values(id=1, n=1))
        with pytest.raises(OperationalError, match="database is locked"):
            async with db.session() as inner:
                await inner.execute(insert(counters).values(id=2, n=2))
    assert await ids(db) == [1]


async def test_a_cancelled_waiter_does_not_keep_the_gate(db: Database, path: Path) -> None:
    wrote = asyncio.Event()
    resume = asyncio.Event()

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=1, n=1))
            wrote.set()
            await resume.wait()

    async def waiter() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=2, n=2))

    first_task = asyncio.create_task(holder())
    await wrote.wait()
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate_of(path).waiting == 0
    resume.set()
    await first_task
    async with asyncio.timeout(1), db.session() as session:
        await session.execute(insert(counters).values(id=3, n=3))
    assert await ids(db) == [1, 3]
    assert gate_of(path).holder is None


async def test_a_transaction_that_read_before_writing_fails_at_once_on_a_stale_snapshot(
    db: Database,
) -> None:
    # SQLITE_BUSY_SNAPSHOT cannot be waited out: raised at once, as SQLite does with aiosqlite.
    async with db.session() as session:
        await session.execute(insert(counters).values(id=1, n=1))
    async with db.engine.connect() as reader:
        await reader.exec_driver_sql("BEGIN")
        assert (await reader.execute(select(counters.c.n))).scalar_one() == 1
        async with db.session() as session:
            await session.execute(update(counters).values(n=2))
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught:
            await reader.execute(update(counters).values(n=3))
        assert time.monotonic() - started < 1
        assert caught.value.orig.sqlite_errorcode == 517  # type: ignore[union-attr]
        await reader.rollback()
    async with db.session() as session:
        assert (await session.execute(select(counters.c.n))).scalar_one() == 2
        await session.execute(update(counters).values(n=4))  # the gate is free again


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from sqlalchemy import text
    from bastion.storage import Database

    async def main():
        db = Database(sys.argv[1])
        async with db.session() as session:
            await session.execute(text("UPDATE counters SET n = n + 1"))
            print("locked", flush=True)
            await asyncio.sleep(0.5)
        await db.dispose()

    asyncio.run(main())
    """
)


@pytest.mark.timing  # measures the loop's longest stall: run alone, not beside the parallel suite
async def test_another_process_holding_the_lock_is_waited_for(db: Database, path: Path) -> None:
    async with db.session() as session:
        await session.execute(insert(counters).values(id=1, n=1))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, f"sqlite:///{path}", stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"locked\n"
        async with loop_watch() as longest, db.session() as session:
            await session.execute(update(counters).values(n=counters.c.n * 10))
    finally:
        assert await asyncio.wait_for(child.wait(), 30) == 0
    assert longest[0] < 0.25
    async with db.session() as session:
        assert (await session.execute(select(counters.c.n))).scalar_one() == 20


class _Holder:
    """Stands in for a connection in the gate's own tests."""

    def is_idle(self) -> bool:
        return False


async def test_the_gate_passes_on_when_a_granted_waiter_is_cancelled() -> None:
    gate = WriteGate()
    first, second, third = _Holder(), _Holder(), _Holder()
    deadline = asyncio.get_running_loop().time() + 5
    assert gate.try_take(first)  # type: ignore[arg-type]
    second_task = asyncio.create_task(gate.take(second, deadline))  # type: ignore[arg-type]
    third_task = asyncio.create_task(gate.take(third, deadline))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    gate.release(first)  # type: ignore[arg-type]
    assert gate.holder is second
    second_task.cancel()  # granted, but cancelled before it ran
    with pytest.raises(asyncio.CancelledError):
        await second_task
    await third_task
    assert gate.holder is third


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("SELECT 1", READ),
        ("  select x FROM t", READ),
        ("PRAGMA journal_mode", READ),
        ("BEGIN", BEGIN),
        ("BEGIN DEFERRED", BEGIN),
        ("BEGIN IMMEDIATE", WRITE),
        ("begin exclusive;", WRITE),
        ("INSERT INTO t VALUES (?)", WRITE),
        ("UPDATE t SET x = ?", WRITE),
        ("DELETE FROM t", WRITE),
        ("WITH c AS (SELECT 1) DELETE FROM t", WRITE),
        ("SAVEPOINT sa_1", WRITE),
        ("CREATE TABLE t (x)", WRITE),
        ("", WRITE),
    ],
)
def test_statements_that_may_write_take_the_gate(statement: str, kind: Any) -> None:
    assert classify(statement) == kind


async def test_a_garbage_collected_holder_does_not_keep_the_gate() -> None:
    gate = WriteGate()
    holder = _Holder()
    assert gate.try_take(holder)  # type: ignore[arg-type]
    del holder  # dropped without a release
    newcomer = _Holder()
    assert gate.try_take(newcomer)  # type: ignore[arg-type]
    assert gate.holder is newcomer


async def test_a_cancelled_waiter_stays_cancelled_even_if_the_holder_is_stale() -> None:
    class Idle(_Holder):
        def is_idle(self) -> bool:
            return True

    gate = WriteGate()
    holder, waiter = Idle(), _Holder()
    assert gate.try_take(holder)  # type: ignore[arg-type]
    task = asyncio.create_task(gate.take(waiter, asyncio.get_running_loop().time() + 5))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.holder is holder
    # At its deadline, a waiter takes the gate from an idle holder (a holder dropped without
    # its transaction ending here).
    late = _Holder()
    await gate.take(late, asyncio.get_running_loop().time() + 0.05)  # type: ignore[arg-type]
    assert gate.holder is late


# -- units of work in one greenlet (Database.read / Database.transaction: direct calls) -------
@pytest.mark.timing  # measures the loop's longest stall: run alone, not beside the parallel suite
async def test_a_direct_unit_of_work_queues_behind_a_suspended_writer(
    db: Database, path: Path
) -> None:
    wrote = asyncio.Event()
    resume = asyncio.Event()

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=1, n=1))
            wrote.set()
            await resume.wait()

    first_task = asyncio.create_task(holder())
    await wrote.wait()
    async with loop_watch() as longest:
        unit = db.transaction(lambda c: c.execute(insert(counters).values(id=2, n=2)).rowcount)
        second_task = asyncio.create_task(unit)
        await asyncio.sleep(0.1)
        assert not second_task.done()
        assert gate_of(path).waiting == 1  # waits on the gate, not inside SQLite
        resume.set()
        await asyncio.wait_for(asyncio.gather(first_task, second_task), 3)
    assert longest[0] < 0.5
    assert second_task.result() == 1
    assert await ids(db) == [1, 2]


@pytest.mark.timing  # measures the loop's longest stall: run alone, not beside the parallel suite
async def test_a_direct_unit_of_work_waits_for_a_lock_held_elsewhere(
    db: Database, path: Path
) -> None:
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        started = time.monotonic()
        async with loop_watch() as longest:
            await db.transaction(lambda c: c.execute(insert(counters).values(id=1, n=1)))
        elapsed = time.monotonic() - started
    finally:
        other.close()
    assert 0.25 <= elapsed < 3
    assert longest[0] < 0.25
    assert await ids(db) == [1]


async def test_a_direct_unit_of_work_that_raises_rolls_back_and_frees_the_gate(
    db: Database, path: Path
) -> None:
    def fail(connection: Any) -> None:
        connection.execute(insert(counters).values(id=1, n=1))
        raise LookupError

    with pytest.raises(LookupError):
        await db.transaction(fail)
    assert gate_of(path).holder is None
    assert await ids(db) == []


async def test_direct_calls_end_with_the_unit_of_work(db: Database) -> None:
    # The pooled connection goes back to AsyncConnection users, whose executes must still pass
    # through an await (SQLAlchemy raises AwaitRequired otherwise).
    assert await db.read(lambda c: c.execute(select(counters.c.id)).all()) == []
    for _ in range(2):
        async with db.engine.connect() as connection:
            assert (await connection.execute(select(counters.c.id))).all() == []


async def test_direct_is_on_inside_the_block_only_even_when_it_raises(db: Database) -> None:
    from bastion.storage.sqlite_inline import InlineConnection, direct  # noqa: PLC0415

    def work(connection: Any) -> list[bool]:
        inline = connection.connection.dbapi_connection
        assert isinstance(inline, InlineConnection)
        states = [inline._direct]
        with direct(connection):
            states.append(inline._direct)
        states.append(inline._direct)

        def fail() -> None:
            with direct(connection):
                states.append(inline._direct)
                raise LookupError

        with pytest.raises(LookupError):
            fail()
        states.append(inline._direct)
        return states

    assert await db.read(work) == [True, True, False, True, False]


def test_direct_leaves_other_drivers_alone() -> None:
    from bastion.storage.sqlite_inline import direct  # noqa: PLC0415

    class _Other:
        _direct = "untouched"

    class _Fairy:
        dbapi_connection = _Other()

    class _Connection:
        connection = _Fairy()

    other = _Fairy.dbapi_connection
    with direct(_Connection()):
        assert "_direct" not in vars(other)
    assert "_direct" not in vars(other)
    assert other._direct == "untouched"


# -- the connection Database.transaction keeps checked out (inline SQLite files) -------------
def _dbapi(connection: Any) -> Any:
    return connection.connection.dbapi_connection


async def test_transactions_run_on_one_kept_connection_that_holds_nothing_between(
    db: Database, path: Path
) -> None:
    seen = []

    def write(connection: Any, row: int) -> None:
        seen.append(_dbapi(connection))
        connection.execute(insert(counters).values(id=row, n=row))

    for row in (1, 2):
        await db.transaction(lambda c, row=row: write(c, row))
        kept = seen[-1]
        assert not kept.in_transaction  # committed: no lock, no snapshot kept
        assert gate_of(path).holder is None
    assert seen[0] is seen[1]
    assert db.engine.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    assert await ids(db) == [1, 2]
    await db.dispose()
    assert db.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_transaction_meets_a_pooled_connection_while_the_kept_one_waits(
    db: Database, path: Path
) -> None:
    wrote, resume = asyncio.Event(), asyncio.Event()
    seen: list[Any] = []

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=1, n=1))
            wrote.set()
            await resume.wait()

    def write(connection: Any, row: int) -> int:
        seen.append(_dbapi(connection))
        return int(connection.execute(insert(counters).values(id=row, n=row)).rowcount)

    first = asyncio.create_task(holder())
    await wrote.wait()
    waiting = [asyncio.create_task(db.transaction(lambda c, r=r: write(c, r))) for r in (2, 3)]
    await asyncio.sleep(0.1)
    assert gate_of(path).waiting == 2  # both wait on the gate, on two connections
    resume.set()
    assert await asyncio.wait_for(asyncio.gather(*waiting), 3) == [1, 1]
    await first
    assert seen[0] is not seen[1]
    assert await ids(db) == [1, 2, 3]
    await db.transaction(lambda c: write(c, 4))
    assert seen[-1] is seen[0]  # the kept one again once free


async def test_an_invalidated_kept_connection_is_replaced(db: Database) -> None:
    seen: list[Any] = []

    def write(connection: Any, row: int, *, invalidate: bool = False) -> None:
        seen.append(_dbapi(connection))
        connection.execute(insert(counters).values(id=row, n=row))
        if invalidate:
            connection.invalidate()  # as SQLAlchemy does on a disconnect error

    with pytest.raises(Exception):  # noqa: B017, PT011 - SQLAlchemy's, whichever it raises
        await db.transaction(lambda c: write(c, 1, invalidate=True))
    await db.transaction(lambda c: write(c, 2))
    assert seen[0] is not seen[1]
    assert await ids(db) == [2]


async def test_a_failed_prepared_statement_leaves_the_connection_usable(db: Database) -> None:
    row, n = bindparam("row", type_=Integer), bindparam("n", type_=Integer)
    add = PreparedStatement(insert(counters).values(id=row, n=n).returning(counters.c.id))
    assert await db.transaction(lambda c: add.execute(c, {"row": 1, "n": 1})) == [(1,)]
    with pytest.raises(IntegrityError):
        await db.transaction(lambda c: add.execute(c, {"row": 1, "n": 2}))
    assert await db.transaction(lambda c: add.execute(c, {"row": 2, "n": 2})) == [(2,)]
    assert await ids(db) == [1, 2]


# -- Database.read on the kept connection (inline SQLite files) --------------------------------
async def test_reads_run_on_the_kept_connection_and_hold_nothing_between(
    db: Database, path: Path
) -> None:
    seen: list[Any] = []

    def write(connection: Any) -> None:
        seen.append(_dbapi(connection))
        connection.execute(insert(counters).values(id=1, n=1))

    def read(connection: Any) -> list[int]:
        seen.append(_dbapi(connection))
        return [row.id for row in connection.execute(select(counters.c.id))]

    await db.transaction(write)
    for _ in range(2):
        assert await db.read(read) == [1]
        assert not seen[-1].in_transaction  # no snapshot kept
        assert gate_of(path).holder is None
    assert seen[0] is seen[1] is seen[2]
    assert db.engine.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    await db.dispose()
    assert db.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_read_that_writes_is_rolled_back_as_on_a_pooled_connection(
    db: Database, path: Path
) -> None:
    pooled = Database(f"sqlite+inline:///{path}")
    pooled._kept = None
    row, n = bindparam("row", type_=Integer), bindparam("n", type_=Integer)
    add = PreparedStatement(insert(counters).values(id=row, n=n).returning(counters.c.id))
    try:
        for database in (db, pooled):
            # Through SQLAlchemy (its autobegun transaction) and on the driver's connection
            # itself (a transaction SQLAlchemy does not know of): neither outlives the read.
            assert (
                await database.read(
                    lambda c: c.execute(insert(counters).values(id=1, n=1)).rowcount
                )
                == 1
            )
            assert await database.read(lambda c: add.execute(c, {"row": 2, "n": 2})) == [(2,)]
            assert gate_of(path).holder is None
            assert await ids(db) == []
            assert await ids(pooled) == []
    finally:
        await pooled.dispose()
    assert not _dbapi(db._kept._connection).in_transaction  # type: ignore[union-attr]


async def test_a_read_that_raises_rolls_back_and_the_connection_stays_kept(db: Database) -> None:
    seen: list[Any] = []

    def fail(connection: Any) -> None:
        seen.append(_dbapi(connection))
        connection.execute(insert(counters).values(id=1, n=1))
        raise LookupError

    with pytest.raises(LookupError):
        await db.read(fail)

    def read(connection: Any) -> list[Any]:
        seen.append(_dbapi(connection))
        return list(connection.execute(select(counters)).all())

    assert await db.read(read) == []
    assert seen[0] is seen[1]
    assert not seen[0].in_transaction


async def test_a_read_meets_a_pooled_connection_while_the_kept_one_waits(
    db: Database, path: Path
) -> None:
    wrote, resume = asyncio.Event(), asyncio.Event()
    seen: list[Any] = []

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=1, n=1))
            wrote.set()
            await resume.wait()

    def write(connection: Any) -> None:
        seen.append(_dbapi(connection))
        connection.execute(insert(counters).values(id=2, n=2))

    def read(connection: Any) -> list[int]:
        seen.append(_dbapi(connection))
        return [row.id for row in connection.execute(select(counters.c.id))]

    first = asyncio.create_task(holder())
    await wrote.wait()
    waiting = asyncio.create_task(db.transaction(write))  # takes the kept one, waits on the gate
    await asyncio.sleep(0.1)
    assert gate_of(path).waiting == 1
    assert await db.read(read) == []  # does not wait: a pooled connection, the committed state
    assert seen[1] is not seen[0]
    resume.set()
    await asyncio.wait_for(asyncio.gather(first, waiting), 3)
    assert await db.read(read) == [1, 2]
    assert seen[-1] is seen[0]  # the kept one again once free


async def test_an_invalidated_kept_connection_is_replaced_after_a_read(db: Database) -> None:
    seen: list[Any] = []

    def read(connection: Any, *, invalidate: bool = False) -> None:
        seen.append(_dbapi(connection))
        connection.execute(select(counters.c.id)).all()
        if invalidate:
            connection.invalidate()  # as SQLAlchemy does on a disconnect error

    await db.read(lambda c: read(c, invalidate=True))
    await db.read(read)
    await db.transaction(read)
    assert seen[0] is not seen[1]
    assert seen[1] is seen[2]
    assert db.engine.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]


async def test_a_read_in_another_event_loop_uses_the_pool(db: Database) -> None:
    seen: list[Any] = []
    await db.read(lambda c: seen.append(_dbapi(c)))

    def elsewhere() -> None:
        async def read() -> None:
            await db.read(lambda c: seen.append(_dbapi(c)))

        asyncio.run(read())

    await asyncio.to_thread(elsewhere)
    await db.read(lambda c: seen.append(_dbapi(c)))
    assert seen[1] is not seen[0]
    assert seen[2] is seen[0]


# -- Database.try_unit: a whole write transaction in one synchronous call ---------------------
_row, _n = bindparam("row", type_=Integer), bindparam("n", type_=Integer)
_ADD = PreparedStatement(insert(counters).values(id=_row, n=_n).returning(counters.c.id))


def _add(*rows: int, result: Any = "done") -> Any:
    def work(unit: sqlite_inline.InlineUnit) -> Any:
        for row in rows:
            _ADD.execute_unit(unit, {"row": row, "n": row})
        return result

    return work


async def _kept(db: Database) -> Any:
    """The kept connection's inline connection (made by a first transaction)."""
    seen: list[Any] = []
    await db.transaction(lambda c: seen.append(_dbapi(c)))
    return seen[0]


async def test_a_unit_commits_in_one_call_and_holds_nothing_after(db: Database, path: Path) -> None:
    kept = await _kept(db)
    assert db.checkpointer is not None
    counted = db.checkpointer._due  # what it counts towards a checkpoint
    assert db.try_unit(_add(1, 2)) == "done"
    assert not kept.in_transaction
    assert gate_of(path).holder is None
    assert db.checkpointer._due > counted  # counted as any write transaction
    # Committed: another connection sees it.
    with sqlite3.connect(path) as other:
        assert [r[0] for r in other.execute("SELECT id FROM counters ORDER BY id")] == [1, 2]


async def test_a_unit_that_declines_or_meets_an_error_writes_nothing(db: Database) -> None:
    await _kept(db)
    assert db.try_unit(_add(1, result=None)) is None  # declined: rolled back
    assert db.try_unit(_add(2, 2)) is None  # IntegrityError on the second: all rolled back
    assert await ids(db) == []
    assert db.try_unit(_add(3)) == "done"  # the connection stays usable
    assert await ids(db) == [3]


async def test_a_unit_that_raises_otherwise_rolls_back_and_propagates(
    db: Database, path: Path
) -> None:
    kept = await _kept(db)

    def fail(unit: sqlite_inline.InlineUnit) -> None:
        _add(1)(unit)
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        db.try_unit(fail)
    assert not kept.in_transaction
    assert gate_of(path).holder is None
    assert await ids(db) == []


async def test_a_unit_does_not_run_while_another_writer_holds_the_gate(db: Database) -> None:
    await _kept(db)
    wrote, resume = asyncio.Event(), asyncio.Event()
    ran: list[int] = []

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=1, n=1))
            wrote.set()
            await resume.wait()

    def work(unit: sqlite_inline.InlineUnit) -> str:
        ran.append(1)
        return str(_add(2)(unit))

    first = asyncio.create_task(holder())
    await wrote.wait()
    assert db.try_unit(work) is None
    assert ran == []  # not even started: it would have had to wait
    resume.set()
    await first
    assert db.try_unit(work) == "done"
    assert await ids(db) == [1, 2]


async def test_a_unit_meeting_a_lock_held_elsewhere_writes_nothing(
    db: Database, path: Path
) -> None:
    await _kept(db)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's writer, as SQLite sees it
        assert db.try_unit(_add(1)) is None  # SQLITE_BUSY at once: no wait on the loop
        assert gate_of(path).holder is None
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert db.try_unit(_add(1)) == "done"
    assert await ids(db) == [1]


async def test_a_unit_runs_only_on_a_free_kept_connection_of_this_loop(db: Database) -> None:
    assert db.try_unit(_add(1)) is None  # no kept connection made yet
    await _kept(db)
    ran: list[Any] = []

    def inner(unit: sqlite_inline.InlineUnit) -> str:
        ran.append(db.try_unit(_add(5)))  # the kept connection is busy: not re-entered
        return str(_add(1)(unit))

    assert db.try_unit(inner) == "done"
    assert ran == [None]

    def elsewhere() -> Any:
        async def attempt() -> Any:
            return db.try_unit(_add(2))

        return asyncio.run(attempt())

    assert await asyncio.to_thread(elsewhere) is None
    assert await ids(db) == [1]


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///{path}", "sqlite+inline://"])
async def test_no_unit_runs_without_a_kept_inline_connection(url: str, path: Path) -> None:
    database = Database(url.format(path=path))
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(counters.metadata.create_all)
        await database.transaction(lambda _c: None)
        assert database.try_unit(_add(1)) is None
    finally:
        await database.dispose()


# -- Database.try_read: reads in one synchronous call ----------------------------------------
_N_OF = PreparedStatement(select(counters.c.n).where(counters.c.id == _row))


def _read(row: int) -> Any:
    def work(unit: sqlite_inline.InlineUnit) -> Any:
        return ([r.n for r in _N_OF.execute_unit(unit, {"row": row})],)

    return work


async def test_a_read_runs_in_one_call_and_holds_nothing_after(db: Database, path: Path) -> None:
    kept = await _kept(db)
    assert db.try_unit(_add(1)) == "done"
    assert db.try_read(_read(1)) == ([1],)
    assert db.try_read(_read(2)) == ([],)
    assert not kept.in_transaction
    assert gate_of(path).holder is None
    # Each read sees the latest commit, another connection's included.
    with sqlite3.connect(path) as other:
        other.execute("UPDATE counters SET n = 7 WHERE id = 1")
    assert db.try_read(_read(1)) == ([7],)


async def test_a_read_does_not_wait_for_a_writer_holding_the_gate(db: Database) -> None:
    """WAL: a reader reads the last commit while a writer of the process is inside its
    transaction (holding the gate), as a read on a pooled connection does."""
    await _kept(db)
    assert db.try_unit(_add(1)) == "done"
    wrote, resume = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with db.session() as session:
            await session.execute(insert(counters).values(id=2, n=2))
            wrote.set()
            await resume.wait()

    first = asyncio.create_task(holder())
    await wrote.wait()
    assert db.try_read(_read(1)) == ([1],)
    assert db.try_read(_read(2)) == ([],)  # not committed yet
    resume.set()
    await first
    assert db.try_read(_read(2)) == ([2],)


async def test_a_read_unit_refuses_a_write_before_it_runs(db: Database, path: Path) -> None:
    """A read takes no write gate: a statement that may write is refused (nothing run, nothing
    written), and the caller's ordinary path runs it."""
    kept = await _kept(db)
    assert db.try_read(_add(1)) is None
    assert not kept.in_transaction
    assert gate_of(path).holder is None
    assert await ids(db) == []
    assert db.try_read(_read(1)) == ([],)  # the connection stays usable


async def test_a_read_declined_or_failing_gives_none(db: Database) -> None:
    await _kept(db)
    assert db.try_read(lambda _: None) is None

    def bad(unit: sqlite_inline.InlineUnit) -> Any:
        return unit.fetch("SELECT nope FROM counters", ())

    assert db.try_read(bad) is None  # sqlite3.OperationalError: no such column
    assert db.try_read(_read(1)) == ([],)

    def fail(unit: sqlite_inline.InlineUnit) -> None:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        db.try_read(fail)
    assert db.try_read(_read(1)) == ([],)


async def test_a_read_runs_only_on_a_free_kept_connection_of_this_loop(db: Database) -> None:
    assert db.try_read(_read(1)) is None  # no kept connection made yet
    await _kept(db)
    ran: list[Any] = []

    def inner(unit: sqlite_inline.InlineUnit) -> Any:
        ran.append(db.try_read(_read(1)))  # the kept connection is busy: not re-entered
        return _read(1)(unit)

    assert db.try_read(inner) == ([],)
    assert ran == [None]

    def elsewhere() -> Any:
        async def attempt() -> Any:
            return db.try_read(_read(1))

        return asyncio.run(attempt())

    assert await asyncio.to_thread(elsewhere) is None


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///{path}", "sqlite+inline://"])
async def test_no_read_runs_without_a_kept_inline_connection(url: str, path: Path) -> None:
    database = Database(url.format(path=path))
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(counters.metadata.create_all)
        await database.read(lambda _c: None)
        assert database.try_read(_read(1)) is None
    finally:
        await database.dispose()


async def test_a_read_leaves_no_transaction_open(db: Database, path: Path) -> None:
    """Whatever ``work`` did to the connection, no snapshot or lock outlives the call."""
    kept = await _kept(db)

    def opens(unit: sqlite_inline.InlineUnit) -> Any:
        kept.sqlite.execute("BEGIN")  # behind the unit's back
        return _read(1)(unit)

    assert db.try_read(opens) == ([],)
    assert not kept.in_transaction
    assert gate_of(path).holder is None
