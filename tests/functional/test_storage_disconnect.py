"""The app on PostgreSQL when the server ends its connections, and how many connections a
request checks out.

Between requests (a restart, an operator's ``pg_terminate_backend``, ``idle_session_timeout``)
the next request is answered as if nothing happened; while a request uses its connection, it is
answered 503 ``storage_unavailable`` (never a 500) and the one after it is answered again. The
checkouts of ``GET /v1/account`` and of a refused password change are pinned, and none of them
pings the server first (SQLAlchemy's pre-ping cost three round trips each):
``bench/identity/pg_roundtrips.py`` counts them for the main identity requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.util import await_only
from tests.conftest import POSTGRES_URL
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import Account, login

from bastion.storage import Database

settings = identity_fixtures.settings
app = identity_fixtures.app
client = identity_fixtures.client
account = identity_fixtures.account

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


def _database(application: FastAPI) -> Database:
    database: Database = application.state.services.database
    return database


async def _terminate(pids: list[int]) -> None:
    """End these server processes and wait until they are gone."""
    admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        for pid in pids:
            await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(500):
            left = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
            )
            if not left:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"backends {pids} still there")
    finally:
        await admin.close()


@contextmanager
def _checked_in(database: Database) -> Iterator[dict[int, Any]]:
    """The asyncpg connections returned to the pool while the block runs, by identity."""
    drivers: dict[int, Any] = {}
    engine = database.engine.sync_engine

    def checkin(dbapi_connection: Any, _record: object) -> None:
        if dbapi_connection is not None:
            drivers[id(dbapi_connection)] = dbapi_connection._connection

    event.listen(engine, "checkin", checkin)
    try:
        yield drivers
    finally:
        event.remove(engine, "checkin", checkin)


@contextmanager
def _counting(database: Database) -> Iterator[dict[str, int]]:
    """Checkouts and liveness pings of this task (the request, which httpx's ASGI transport
    runs on it) while the block runs; background tasks' (the audit writer's) are not counted."""
    counts = {"checkouts": 0, "pings": 0}
    engine = database.engine.sync_engine
    dialect: Any = engine.dialect
    do_ping = dialect.do_ping
    task = asyncio.current_task()

    def checkout(*_: object) -> None:
        if asyncio.current_task() is task:
            counts["checkouts"] += 1

    def ping(dbapi_connection: object) -> bool:
        if asyncio.current_task() is task:
            counts["pings"] += 1
        return bool(do_ping(dbapi_connection))

    event.listen(engine, "checkout", checkout)
    dialect.do_ping = ping
    try:
        yield counts
    finally:
        event.remove(engine, "checkout", checkout)
        del dialect.do_ping


async def test_connections_ended_between_requests_are_replaced_unseen(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    with _checked_in(_database(app)) as pooled:
        session = await login(client, account)
        assert (await client.get("/v1/account", headers=session.headers)).status_code == 200
    drivers = [driver for driver in pooled.values() if not driver.is_closed()]
    assert drivers
    await _terminate([driver.get_server_pid() for driver in drivers])
    for _ in range(500):  # the event loop reads each server's goodbye, as between requests
        if all(driver.is_closed() for driver in drivers):
            break
        await asyncio.sleep(0.01)
    with _counting(_database(app)) as counts:
        response = await client.get("/v1/account", headers=session.headers)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == account.email
    assert counts["pings"] == 0


async def test_a_connection_ended_during_a_request_is_a_503_problem(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    session = await login(client, account)
    # Warm: the revocation set is fresh, so the next checkout is the account's read, whose
    # error reaches the HTTP layer as the engine raised it (the set's reload would wrap it).
    assert (await client.get("/v1/account", headers=session.headers)).status_code == 200
    engine = _database(app).engine.sync_engine
    killed: list[int] = []

    def end_it(dbapi_connection: Any, *_: object) -> None:
        # After Bastion's own checkout check: the connection was alive when handed out.
        if not killed:
            killed.append(dbapi_connection._connection.get_server_pid())
            await_only(_terminate(killed))

    event.listen(engine, "checkout", end_it)
    try:
        response = await client.get("/v1/account", headers=session.headers)
    finally:
        event.remove(engine, "checkout", end_it)
    assert killed
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "storage_unavailable"
    assert "SELECT" not in response.text
    assert (await client.get("/v1/account", headers=session.headers)).status_code == 200


async def test_checkouts_per_request_are_pinned(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    # Fewer is welcome: lower the pin. More needs a reason (each checkout is a BEGIN and a
    # ROLLBACK or COMMIT on PostgreSQL, two round trips besides the statements).
    session = await login(client, account)
    await client.get("/v1/account", headers=session.headers)  # warm: statements prepared
    with _counting(_database(app)) as counts:
        response = await client.get("/v1/account", headers=session.headers)
    assert response.status_code == 200
    assert counts == {"checkouts": 1, "pings": 0}
    body = {"current_password": account.password, "new_password": "password"}
    with _counting(_database(app)) as counts:
        response = await client.post("/v1/account/password", json=body, headers=session.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "password_rejected"
    # The account (twice), the second factors, step-up's enrollment check (password history is
    # off by default: no read of it).
    assert counts == {"checkouts": 4, "pings": 0}
