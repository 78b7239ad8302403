"""PostgreSQL connections that died: replaced at checkout without a pre-ping round trip, and
a 503 ``StorageDisconnected`` (still a ``DBAPIError``) when lost while in use.

The server ends connections with ``pg_terminate_backend``, as a restart, an operator or
``idle_session_timeout`` would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Connection, event, func, literal, select
from sqlalchemy.exc import DBAPIError
from tests.conftest import POSTGRES_URL

from bastion.errors import BastionError
from bastion.storage import Database, StorageUnavailable
from bastion.storage import database as database_module
from bastion.storage.errors import StorageDisconnected

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


async def terminate(pid: int) -> None:
    """End the server process ``pid`` and wait until it is gone."""
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(500):
            if not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"backend {pid} still there")
    finally:
        await admin.close()


async def until_closed(driver: Any) -> None:
    """Let the event loop read the server's goodbye (what happens between two requests)."""
    for _ in range(500):
        if driver.is_closed():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the driver never saw the connection close")


def backend(connection: Connection) -> tuple[int, Any]:
    """The server process and the asyncpg connection behind ``connection``."""
    pid = connection.execute(select(func.pg_backend_pid())).scalar_one()
    return pid, connection.connection.dbapi_connection._connection  # type: ignore[union-attr]


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every liveness ping the engine's dialect sends (the pre-ping's or Bastion's)."""
    sent: list[object] = []
    dialect = db.engine.sync_engine.dialect
    do_ping = dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        sent.append(dbapi_connection)
        return do_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


async def test_a_connection_the_server_ended_is_replaced_without_a_ping(
    db: Database, pings: list[object]
) -> None:
    pid, driver = await db.read(backend)
    await terminate(pid)
    await until_closed(driver)
    new_pid, _ = await db.read(backend)  # no error: the pool made a new connection
    assert new_pid != pid
    assert pings == []
    assert not db.engine.sync_engine.pool._pre_ping  # three round trips each


async def test_a_connection_idle_for_long_is_pinged_first(
    db: Database, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    await db.read(backend)
    await db.read(backend)
    assert pings == []  # used again at once: trusted
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    await asyncio.sleep(0.01)
    await db.read(backend)
    assert len(pings) == 1


async def test_a_failed_ping_replaces_the_connection(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid, _ = await db.read(backend)
    dialect = db.engine.sync_engine.dialect

    def unanswered(_dbapi_connection: object) -> bool:
        raise OSError("no answer")  # a network path that failed silently, then timed out

    monkeypatch.setattr(dialect, "do_ping", unanswered)
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    await asyncio.sleep(0.01)
    new_pid, _ = await db.read(backend)  # the replacement is new: not pinged
    assert new_pid != pid


async def test_a_connection_lost_in_use_is_a_503_that_is_still_a_dbapi_error(
    db: Database,
) -> None:
    async with db.engine.connect() as connection:
        pid = (await connection.execute(select(func.pg_backend_pid()))).scalar_one()
        await terminate(pid)
        with pytest.raises(StorageDisconnected) as caught:
            await connection.execute(select(literal("card 4111 1111 1111 1111")))
    error = caught.value
    assert isinstance(error, DBAPIError)  # every `except SQLAlchemyError` still handles it
    assert error.connection_invalidated
    assert isinstance(error, StorageUnavailable)
    assert isinstance(error, BastionError)
    assert (error.code, error.status, error.expose) == ("storage_unavailable", 503, True)
    assert "4111" not in str(error)
    assert "SELECT" not in str(error)
    assert (await db.read(backend))[0] != pid  # the next unit of work gets a new connection


@pytest.fixture
def round_trips(db: Database) -> list[bytes]:
    """What the database's connections send, one item per message flight to the server."""
    sent: list[bytes] = []

    def count_writes(dbapi_connection: Any, _record: object) -> None:
        transport = dbapi_connection._connection._transport
        write = transport.write

        def counted(data: bytes) -> None:
            sent.append(bytes(data))
            write(data)

        transport.write = counted

    event.listen(db.engine.sync_engine, "connect", count_writes, insert=True)
    return sent


def _one(connection: Connection) -> int:
    return int(connection.execute(select(literal(1))).scalar_one())


async def test_reads_send_no_begin_and_transactions_still_do(
    db: Database, round_trips: list[bytes]
) -> None:
    await db.read(_one)
    await db.transaction(_one)  # the statement prepared: each unit below sends only its own
    round_trips.clear()
    await db.read(_one)
    assert len(round_trips) == 1  # the statement: no BEGIN, no ROLLBACK
    round_trips.clear()
    await db.transaction(_one)
    assert len(round_trips) == 3  # BEGIN, the statement, COMMIT
    assert b"BEGIN" in round_trips[0]
    round_trips.clear()
    async with db.engine.connect() as connection:  # the pool restored the default
        await connection.run_sync(_one)
    assert len(round_trips) == 3  # BEGIN, the statement, ROLLBACK
