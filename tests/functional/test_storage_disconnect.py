"""The app on PostgreSQL when the server ends its connections, and how many connections a
request checks out.

Between requests (a restart, an operator's ``pg_terminate_backend``, ``idle_session_timeout``)
the next request is answered as if nothing happened; while a request uses its connection, it is
answered 503 ``storage_unavailable`` (never a 500) and the one after it is answered again. The
checkouts and round trips of ``GET /v1/account``, of a refused password change and of the
multi-factor requests are pinned, and none of them pings the server first (SQLAlchemy's
pre-ping cost three round trips each): ``bench/identity/pg_roundtrips.py`` counts them for the
main identity requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.util import await_only
from tests.conftest import POSTGRES_URL
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import Account, enroll_totp, login, login_response

from bastion.clock import FrozenClock
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
    """Checkouts, liveness pings and round trips of this task (the request, which httpx's ASGI
    transport runs on it) while the block runs; background tasks' (the audit writer's) are not
    counted. A round trip is a write of the asyncpg connection's transport (one message flight
    the client then waits for), except one that prepares a statement (a Parse message first:
    once per statement and pooled connection, so it depends on which connection a request
    gets, not on what it does)."""
    counts = {"checkouts": 0, "pings": 0, "round_trips": 0}
    engine = database.engine.sync_engine
    dialect: Any = engine.dialect
    do_ping = dialect.do_ping
    task = asyncio.current_task()
    wrapped: dict[int, tuple[Any, Any]] = {}

    def count_writes(dbapi_connection: Any) -> None:
        transport = dbapi_connection._connection._transport
        if id(transport) in wrapped:
            return
        write = transport.write

        def counted(data: Any) -> None:
            if asyncio.current_task() is task and bytes(data[:1]) != b"P":
                counts["round_trips"] += 1
            write(data)

        transport.write = counted
        wrapped[id(transport)] = (transport, write)

    def checkout(dbapi_connection: Any, *_: object) -> None:
        if asyncio.current_task() is task:
            counts["checkouts"] += 1
            count_writes(dbapi_connection)

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
        for transport, write in wrapped.values():
            transport.write = write


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
    assert counts == {"checkouts": 1, "pings": 0, "round_trips": 1}
    body = {"current_password": account.password, "new_password": "password"}
    with _counting(_database(app)) as counts:
        response = await client.post("/v1/account/password", json=body, headers=session.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "password_rejected"
    # The account (twice: the route's, the enrollment policy's), the step-up check (the
    # factors and the session's state, one unit of work of two statements). Password history
    # is off by default: no read of it. Was 4 checkouts (the factors and the session's state
    # in two), 8 round trips.
    assert counts == {"checkouts": 3, "pings": 0, "round_trips": 4}


async def test_mfa_checkouts_and_round_trips_are_pinned(
    app: FastAPI, client: httpx.AsyncClient, account: Account, clock: FrozenClock
) -> None:
    """The requests of an account with an authenticator app. Their pure reads (the account's
    factors, a challenge peeked, the step-up check) run outside transactions, one statement
    each where they can (``Database.read``: no BEGIN, no ROLLBACK); what a write relies on
    (consuming the challenge, the TOTP step, the session's marks) stays in its transaction."""
    await enroll_totp(app, client, account)
    database = _database(app)
    session = await login(client, account)  # completes the challenge

    challenge = ""

    async def totp_login() -> httpx.Response:
        return await login_response(client, account.email, account.password)

    async def complete() -> httpx.Response:
        _, code = account.next_second_factor()
        body = {"challenge_token": challenge, "method": "otp", "code": code}
        return await client.post("/v1/sessions/mfa/complete", json=body)

    async def factors() -> httpx.Response:
        return await client.get("/v1/account/mfa", headers=session.headers)

    async def next_step() -> None:
        # The next TOTP step; the signing keys' cache aged meanwhile: reloaded here, so that
        # what is counted is the request's own work.
        clock.advance(timedelta(seconds=30))
        await app.state.services.identity.access_tokens.keys.active_key()

    async def challenged() -> None:
        nonlocal challenge
        challenge = (await totp_login()).json()["challenge_token"]
        await next_step()  # a TOTP step of its own: each code works once

    async def step_up() -> httpx.Response:
        _, code = account.next_second_factor()
        body = {"method": "otp", "code": code}
        path = "/v1/sessions/current/step-up"
        response = await client.post(path, json=body, headers=session.headers)
        session.access_token = response.json()["access_token"]
        return response

    async def rejected_change() -> httpx.Response:
        body = {"current_password": account.password, "new_password": "password"}
        return await client.post("/v1/account/password", json=body, headers=session.headers)

    async def nothing() -> None:
        return None

    # Fewer is welcome: lower the pin. More needs a reason. (what precedes the request
    # uncounted, the request, its status, checkouts, round trips).
    pins = [
        # The password unit (refused: a factor), the factors, the challenge's transaction
        # (BEGIN, the factors, INSERT, COMMIT). Was 5 checkouts, 19 round trips.
        (nothing, totp_login, 202, 4, 10),
        # The challenge peeked; its transaction (BEGIN, consume, user, TOTP secret, the
        # conditional UPDATE of the step, COMMIT); the session's. Was 4 and 15.
        (challenged, complete, 200, 3, 12),
        # The factors (one statement), the account. Was 2 and 7.
        (nothing, factors, 200, 2, 2),
        # The account, the factors, the transaction (BEGIN, TOTP secret, step, session state
        # and its UPDATE, COMMIT). Was 3 and 11.
        (next_step, step_up, 200, 3, 8),
        # The account, the step-up check (factors and session state, one unit of work).
        # Was 3 and 7.
        (nothing, rejected_change, 422, 2, 3),
    ]
    for prepare, request, status, checkouts, round_trips in pins:
        await prepare()
        await request()  # warm: statements prepared
        await prepare()
        with _counting(database) as counts:
            response = await request()
        assert response.status_code == status, response.text
        expected = {"checkouts": checkouts, "pings": 0, "round_trips": round_trips}
        assert counts == expected, request.__name__
