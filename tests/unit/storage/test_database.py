"""Database: SQLite pragmas and file modes, sessions as units of work, ping, UTC timestamps."""

from __future__ import annotations

import asyncio
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, insert, select, text
from sqlalchemy.exc import StatementError

from bastion.config.settings import Settings
from bastion.errors import BastionError
from bastion.storage import Database, StorageError, StorageUnavailable
from bastion.storage import database as database_module
from bastion.storage.columns import UTCDateTime
from bastion.storage.database import normalize_url

stamps = Table(
    "stamps",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
)


async def _create_stamps(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(stamps.metadata.create_all)


@pytest.mark.parametrize(
    ("driver", "busy_timeout"),
    # The inline driver retries busy statements itself (asyncio.sleep), SQLite never waits.
    [("sqlite+aiosqlite", 5000), ("sqlite+inline", 0), ("sqlite", 0)],
)
async def test_sqlite_pragmas_are_set_on_every_connection(
    tmp_path: Path, driver: str, busy_timeout: int
) -> None:
    db = Database(f"{driver}:///{tmp_path / 'p.db'}")
    try:
        async with db.engine.connect() as conn:
            values = {
                "journal_mode": (await conn.execute(text("PRAGMA journal_mode"))).scalar_one(),
                "foreign_keys": (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one(),
                "busy_timeout": (await conn.execute(text("PRAGMA busy_timeout"))).scalar_one(),
                "synchronous": (await conn.execute(text("PRAGMA synchronous"))).scalar_one(),
            }
    finally:
        await db.dispose()
    # synchronous: 1 is NORMAL.
    assert values == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": busy_timeout,
        "synchronous": 1,
    }


async def test_sqlite_file_and_directory_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "bastion.db"
    db = Database(f"sqlite:///{path}")
    try:
        await db.ping()
    finally:
        await db.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_from_settings_uses_the_data_dir(settings: Settings) -> None:
    db = Database.from_settings(settings)
    assert db.is_sqlite
    assert db.url.drivername == "sqlite+inline"
    assert db.url.database == str((settings.data_dir / "bastion.db").resolve())


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///x.db", "sqlite+inline"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_get_the_async_driver(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


def test_repr_hides_the_password() -> None:
    db = Database("postgresql://bastion:hunter2-secret@127.0.0.1:5432/db")
    assert "hunter2" not in repr(db)
    assert not db.is_sqlite


async def test_session_commits_on_exit_and_rolls_back_on_error(database_url: str) -> None:
    db = Database(database_url)
    try:
        await _create_stamps(db)
        now = datetime.now(UTC)
        async with db.session() as session:
            await session.execute(insert(stamps).values(id=1, at=now))

        async def fail_midway() -> None:
            async with db.session() as session:
                await session.execute(insert(stamps).values(id=2, at=now))
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            await fail_midway()
        async with db.session() as session:
            ids = (await session.execute(select(stamps.c.id))).scalars().all()
    finally:
        await db.dispose()
    assert ids == [1]


async def test_units_of_work_commit_on_return_and_roll_back_on_error(database_url: str) -> None:
    """``Database.transaction`` / ``read`` (one greenlet per unit of work) on both backends."""
    db = Database(database_url)
    now = datetime.now(UTC)

    def fail_midway(connection: Connection) -> None:
        connection.execute(insert(stamps).values(id=2, at=now))
        raise RuntimeError("abort")

    try:
        await _create_stamps(db)
        await db.transaction(lambda c: c.execute(insert(stamps).values(id=1, at=now)))
        with pytest.raises(RuntimeError):
            await db.transaction(fail_midway)
        ids = await db.read(lambda c: c.execute(select(stamps.c.id)).scalars().all())
    finally:
        await db.dispose()
    assert ids == [1]


async def test_timestamps_come_back_aware_utc(database_url: str) -> None:
    db = Database(database_url)
    paris = timezone(timedelta(hours=2))
    written = datetime(2026, 6, 1, 14, 30, 15, 123456, tzinfo=paris)
    try:
        await _create_stamps(db)
        async with db.session() as session:
            await session.execute(insert(stamps).values(id=1, at=written))
            later = (
                await session.execute(
                    select(stamps.c.at).where(stamps.c.at > written - timedelta(seconds=1))
                )
            ).scalar_one()
    finally:
        await db.dispose()
    assert later == written
    assert later.tzinfo is UTC


async def test_naive_timestamps_are_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        await _create_stamps(db)
        with pytest.raises(StatementError, match="naive datetime"):
            async with db.session() as session:
                await session.execute(insert(stamps).values(id=1, at=datetime(2026, 1, 1)))  # noqa: DTZ001
    finally:
        await db.dispose()


async def test_ping_succeeds_on_a_reachable_database(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.ping()
    finally:
        await db.dispose()


async def test_ping_raises_storage_unavailable_without_leaking_the_url() -> None:
    # Port 1 on loopback: nothing listens there.
    db = Database("postgresql://bastion:hunter2-secret@127.0.0.1:1/db")
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await db.ping()
    finally:
        await db.dispose()
    error = caught.value
    assert isinstance(error, StorageError)
    assert isinstance(error, BastionError)
    assert (error.code, error.status) == ("storage_unavailable", 503)
    assert "hunter2" not in str(error)
    assert "127.0.0.1" not in str(error)


def _first_value(connection: Connection) -> object:
    return connection.execute(select(1)).scalar_one()


async def test_units_of_work_on_an_unreachable_database_are_storage_unavailable() -> None:
    # A request's read or transaction that must open a connection (the pool has none idle) on a
    # server that refuses it: a 503 the client may retry, not an unhandled OSError (a 500).
    db = Database("postgresql://bastion:hunter2-secret@127.0.0.1:1/db")
    try:
        with pytest.raises(StorageUnavailable) as read:
            await db.read(_first_value)
        with pytest.raises(StorageUnavailable):
            await db.transaction(_first_value)
        with pytest.raises(StorageUnavailable):
            async with db.engine.connect():
                pass
    finally:
        await db.dispose()
    assert "hunter2" not in str(read.value)
    assert isinstance(read.value.__cause__, OSError)


async def test_a_server_that_never_answers_is_storage_unavailable_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A server that accepts the connection and says nothing (overloaded, or a half-dead
    # network path): asyncpg gives up after CONNECT_TIMEOUT_SECONDS with a TimeoutError.
    monkeypatch.setattr(database_module, "CONNECT_TIMEOUT_SECONDS", 0.2)
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    db = Database(f"postgresql://bastion@127.0.0.1:{port}/db")
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await asyncio.wait_for(db.read(_first_value), 10)
    finally:
        await db.dispose()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert held, "the client never reached the silent server"
    assert isinstance(caught.value.__cause__, TimeoutError)


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite://"])
async def test_in_memory_sqlite_is_shared_across_sessions(url: str) -> None:
    db = Database(url)
    try:
        await _create_stamps(db)
        async with db.session() as session:
            await session.execute(insert(stamps).values(id=1, at=datetime.now(UTC)))
        async with db.session() as session:
            count = len((await session.execute(select(stamps.c.id))).all())
    finally:
        await db.dispose()
    assert count == 1
