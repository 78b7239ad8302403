"""WAL checkpoints of inline SQLite databases run in a worker thread, never inside a commit.

The hazard: SQLite's automatic checkpoint (every 1000 WAL pages) copies pages and syncs two
files inside the commit that crosses the threshold; on the inline driver that is the event
loop's thread, so every request in flight stalls. The checkpointer must also keep the WAL
bounded although the loop goes on committing while it runs, with several processes on a file.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text

from bastion.storage import Database
from bastion.storage.sqlite_inline import InlineConnection
from bastion.storage.wal import (
    CHECKPOINT_UNITS,
    RESTART_EVERY,
    TRANSACTION_UNITS,
    WalCheckpointer,
)

notes = Table(
    "notes",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("body", String(200), nullable=False),
)
BODY = "x" * 200
#: A one-row commit writes a few WAL frames of 4 KiB: thousands of them without a checkpoint
#: make a WAL of tens of megabytes.
COMMITS = 1000
#: The WAL's size bound with a checkpoint every ``SMALL_UNITS``: it starts over every
#: ``RESTART_EVERY`` checkpoints, so a few hundred frames plus what is committed during a
#: checkpoint's first pass (1-2 MiB measured on a busy machine; 1000 commits without
#: checkpoints make ~12 MiB).
SMALL_UNITS = 50
WAL_BOUND = 4 * 1024 * 1024


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "wal.db"


def wal_size(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def create(db: Database) -> None:
    async with db.engine.begin() as connection:
        await connection.run_sync(notes.metadata.create_all)


@pytest.fixture
async def db(path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{path}")
    await create(database)
    try:
        yield database
    finally:
        await database.dispose()


def checkpointer_of(db: Database) -> WalCheckpointer:
    assert db.checkpointer is not None
    return db.checkpointer


async def write(db: Database, commits: int) -> None:
    for _ in range(commits):
        async with db.session() as session:
            await session.execute(insert(notes).values(body=BODY))


async def pragma(db: Database, name: str) -> Any:
    async with db.engine.connect() as connection:
        return (await connection.exec_driver_sql(name)).scalar_one()


async def test_inline_connections_never_checkpoint_in_a_commit(db: Database) -> None:
    assert await pragma(db, "PRAGMA wal_autocheckpoint") == 0
    assert await pragma(db, "PRAGMA journal_mode") == "wal"


@pytest.mark.parametrize("url", ["sqlite+aiosqlite:///{path}", "sqlite://"])
async def test_other_sqlite_databases_keep_sqlites_own_checkpoints(url: str, path: Path) -> None:
    # aiosqlite commits in its worker thread; an in-memory database has no WAL.
    db = Database(url.format(path=path))
    try:
        assert db.checkpointer is None
        assert await pragma(db, "PRAGMA wal_autocheckpoint") == 1000
    finally:
        await db.dispose()


def test_postgresql_has_no_checkpointer() -> None:
    assert Database("postgresql://bastion@127.0.0.1/test").checkpointer is None


async def test_the_driver_reports_each_write_transaction_with_its_rows(db: Database) -> None:
    reported: list[int] = []

    async with db.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        adapted = raw.dbapi_connection
        assert isinstance(adapted, InlineConnection)
        assert adapted.on_write is not None
        adapted.on_write = lambda _gate, rows: reported.append(rows)
        await connection.execute(insert(notes), [{"body": BODY}] * 3)
        await connection.commit()
        await connection.execute(select(notes.c.id))  # reads report nothing
        await connection.commit()
        await connection.execute(text("UPDATE notes SET body = 'y' WHERE id = 1"))
        await connection.rollback()  # a rolled back write ends too (it changed a row)
    assert reported == [3, 1]


async def test_a_checkpoint_starts_after_enough_writes_and_runs_off_the_loop(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = checkpointer_of(db)
    threads: list[int] = []
    run = checkpointer._run

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return run(*args, **kwargs)

    monkeypatch.setattr(checkpointer, "_run", recorded)
    commits = CHECKPOINT_UNITS // (TRANSACTION_UNITS + 1)
    await write(db, commits - 1)
    await checkpointer.idle()
    assert checkpointer.runs == 0  # not due yet
    await write(db, 1)
    await checkpointer.idle()
    assert checkpointer.runs == 1
    assert threads
    assert threading.get_ident() not in threads
    assert checkpointer.last is not None
    busy, frames, copied = checkpointer.last
    assert busy == 0
    assert frames == copied > 0  # nothing kept it from copying the whole WAL


async def test_the_wal_stays_bounded_while_writers_never_stop(db: Database, path: Path) -> None:
    checkpointer = checkpointer_of(db)
    checkpointer.units = SMALL_UNITS

    # Four writers commit back to back: the loop never waits for anything but the gate, so
    # commits would overtake a checkpoint that did not keep them out.
    await asyncio.gather(*(write(db, COMMITS // 4) for _ in range(4)))
    await checkpointer.idle()
    # Fewer than one per SMALL_UNITS: what is written during a checkpoint's first pass (the
    # gate free) is copied by its second, and counts towards no other checkpoint.
    assert checkpointer.runs >= COMMITS * (TRANSACTION_UNITS + 1) // SMALL_UNITS // 4
    assert wal_size(path) < WAL_BOUND
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(notes))).scalar() == COMMITS


async def test_without_the_checkpointer_the_wal_grows(db: Database, path: Path) -> None:
    # The other side of the bound above: nothing else checkpoints inline connections.
    checkpointer_of(db).units = sys.maxsize
    await write(db, COMMITS)
    assert wal_size(path) > WAL_BOUND


async def test_dispose_checkpoints_and_empties_the_wal(db: Database, path: Path) -> None:
    await write(db, 50)
    assert wal_size(path) > 0
    # Another connection keeps the WAL file (the last one to close would delete it).
    with sqlite3.connect(path) as other:
        await db.dispose()
        assert wal_size(path) == 0
        assert other.execute("SELECT count(*) FROM notes").fetchone() == (50,)
    other.close()


async def test_a_failing_checkpoint_fails_no_write(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = checkpointer_of(db)
    checkpointer.units = SMALL_UNITS

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(checkpointer, "_run", broken)
    await write(db, 100)
    await checkpointer.idle()
    assert checkpointer.runs == 0
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(notes))).scalar() == 100


def add_note(connection: Any) -> Any:
    connection.execute(insert(notes).values(body=BODY))
    return connection.connection.dbapi_connection


async def paused_checkpoint(
    db: Database, monkeypatch: pytest.MonkeyPatch, *, gated: bool = True
) -> tuple[threading.Event, threading.Event]:
    """Starts a checkpoint whose pass in the thread waits until the second event is set (the
    pass that holds the write gate, or with ``gated=False`` the first, which does not);
    returns once that pass runs (the first event)."""
    checkpointer = checkpointer_of(db)
    running, finish = threading.Event(), threading.Event()
    run = checkpointer._run
    passes: list[bool] = []

    def paused(*args: Any, **kwargs: Any) -> Any:
        passes.append(checkpointer.holding is not None)
        if passes[-1] == gated:
            running.set()
            finish.wait(10)
        return run(*args, **kwargs)

    monkeypatch.setattr(checkpointer, "_run", paused)
    checkpointer.units = 1
    checkpointer.restart_every = 1  # this one has both passes
    await db.transaction(add_note)  # due at once: the checkpoint starts
    assert await asyncio.to_thread(running.wait, 10)
    assert (checkpointer.holding is not None) == gated
    checkpointer.units = CHECKPOINT_UNITS  # no other one afterwards
    return running, finish


async def test_the_first_pass_lets_writers_go_on_and_the_second_copies_the_rest(
    db: Database, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bulk of the WAL is copied and synced without the gate; only what was written
    # meanwhile is copied while writers wait, so the whole WAL is still copied and started over.
    await write(db, 20)
    _, finish = await paused_checkpoint(db, monkeypatch, gated=False)
    checkpointer = checkpointer_of(db)
    for _ in range(5):  # not held up by the first pass: each commits at once
        await asyncio.wait_for(db.transaction(add_note), 1)
        assert checkpointer.holding is None
    assert checkpointer.runs == 0
    finish.set()
    await checkpointer.idle()
    assert checkpointer.runs == 1
    assert checkpointer.last is not None
    busy, frames, copied = checkpointer.last
    assert busy == 0
    assert frames == copied > 0  # the writes made during the first pass too
    size = wal_size(path)
    await db.transaction(add_note)  # the next commit starts the WAL over
    assert wal_size(path) == size
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(notes))).scalar() == 27


async def test_one_checkpoint_in_restart_every_holds_the_gate(
    db: Database, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The others sync and copy the WAL without keeping writers out, as often as SQLite's own
    # checkpoints (the same exposure of commits to a power loss); one in RESTART_EVERY then
    # copies the rest holding the gate, and the next commit starts the WAL over.
    assert RESTART_EVERY > 1
    checkpointer = checkpointer_of(db)
    gated: list[bool] = []
    run = checkpointer._run

    def recorded(*args: Any, **kwargs: Any) -> Any:
        gated.append(checkpointer.holding is not None)
        return run(*args, **kwargs)

    monkeypatch.setattr(checkpointer, "_run", recorded)
    commits = CHECKPOINT_UNITS // (TRANSACTION_UNITS + 1)
    sizes = []
    for _ in range(RESTART_EVERY):
        await write(db, commits)
        await checkpointer.idle()
        sizes.append(wal_size(path))
    assert checkpointer.runs == RESTART_EVERY
    assert gated == [False] * RESTART_EVERY + [True]
    assert checkpointer.last is not None
    assert checkpointer.last[1] == checkpointer.last[2]  # copied to its end
    # Nothing was written during them: each copied the whole WAL, which started over.
    assert sizes == [sizes[0]] * RESTART_EVERY
    await write(db, 1)  # started over: the file is not longer than before
    assert wal_size(path) == sizes[-1]


async def test_released_waits_for_a_checkpoint_holding_the_gate(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpointer = checkpointer_of(db)
    assert await checkpointer.released() is False  # none: at once
    _, finish = await paused_checkpoint(db, monkeypatch)
    waiting = asyncio.create_task(checkpointer.released())
    cancelled = asyncio.create_task(checkpointer.released())
    await asyncio.sleep(0.05)
    cancelled.cancel()
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert db.try_unit(lambda _unit: "written") is None  # the gate is held
    finish.set()
    assert await asyncio.wait_for(waiting, 10) is True
    assert checkpointer.holding is None
    assert db.try_unit(lambda _unit: "written") == "written"


async def test_units_of_work_wait_for_a_checkpoint_then_run_on_the_kept_connection(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While a checkpoint holds the gate, transactions arriving take no connection (each would
    # otherwise check out a pooled one to wait on the gate with, its page cache made stale).
    kept = await db.transaction(add_note)
    _, finish = await paused_checkpoint(db, monkeypatch)
    waiting = [asyncio.create_task(db.transaction(add_note)) for _ in range(4)]
    await asyncio.sleep(0.1)
    assert not any(task.done() for task in waiting)
    assert db.engine.sync_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    finish.set()
    used = await asyncio.wait_for(asyncio.gather(*waiting), 10)
    assert all(connection is kept for connection in used)
    assert checkpointer_of(db).holding is None
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(notes))).scalar() == 6


async def test_a_cancelled_wait_for_a_checkpoint_leaves_the_others_waiting(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, finish = await paused_checkpoint(db, monkeypatch)
    first, second = (asyncio.create_task(db.transaction(add_note)) for _ in range(2))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.sleep(0.05)
    assert first.cancelled()
    assert not second.done()
    finish.set()
    await asyncio.wait_for(second, 10)
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(notes))).scalar() == 2


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from sqlalchemy import text
    from bastion.storage import Database

    async def main():
        db = Database(sys.argv[1])
        db.checkpointer.units = int(sys.argv[3])
        for n in range(int(sys.argv[2])):
            async with db.session() as session:
                await session.execute(text("INSERT INTO notes (body) VALUES ('child')"))
        await db.checkpointer.idle()
        print(db.checkpointer.runs, flush=True)
        await db.dispose()

    asyncio.run(main())
    """
)


async def test_several_processes_on_one_file_keep_it_whole_and_the_wal_bounded(
    db: Database, path: Path
) -> None:
    per_process = COMMITS // 2
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            f"sqlite:///{path}",
            str(per_process),
            str(SMALL_UNITS),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    checkpointer = checkpointer_of(db)
    checkpointer.units = SMALL_UNITS
    await write(db, per_process)  # this process writes too, meanwhile
    outputs = [await asyncio.wait_for(child.communicate(), 60) for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert all(int(stdout) > 0 for stdout, _ in outputs)  # each child checkpointed
    await checkpointer.idle()
    assert wal_size(path) < WAL_BOUND
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(notes))).scalar()
        assert total == 3 * per_process
        assert (await session.execute(text("PRAGMA integrity_check"))).scalar() == "ok"
