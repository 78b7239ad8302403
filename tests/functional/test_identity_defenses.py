"""Login defenses and revocation end to end: bounded lockout, rehash on login, revocation
within the bound, audit events for every failure."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import bcrypt
import httpx
from fastapi import FastAPI
from sqlalchemy import select, update
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    WRONG_PASSWORD,
    Account,
    assert_problem,
    audit_rows,
    client_for,
    client_ip,
    create_account,
    identity_settings,
    login,
    login_response,
    running_app,
)

from bastion.clock import FrozenClock
from bastion.identity.accounts.models import users
from bastion.identity.sessions.models import sessions

# Shared fixtures (see identity_fixtures); this module defines only its variants.
settings, app, client, account = (
    identity_fixtures.settings,
    identity_fixtures.app,
    identity_fixtures.client,
    identity_fixtures.account,
)


async def test_lockout_is_bounded(
    app: FastAPI, client: httpx.AsyncClient, account: Account, clock: FrozenClock
) -> None:
    """Many failures, from many addresses, lock the account for at most 15 minutes; then the
    owner gets in."""
    statuses = []
    for n in range(40):
        async with client_for(app, client_ip(n)) as attacker:
            response = await login_response(attacker, account.email, WRONG_PASSWORD)
            statuses.append(response.status_code)
    assert statuses[:5] == [401] * 5
    assert 429 in statuses
    locked = await login_response(client, account.email, account.password)
    assert_problem(locked, 429, "too_many_attempts")
    assert int(locked.headers["retry-after"]) <= 15 * 60
    clock.advance(timedelta(minutes=15, seconds=1))
    assert (await login_response(client, account.email, account.password)).status_code == 200
    failed = await audit_rows(app, "identity:login:failed")
    assert {row["reason"] for row in failed} == {"wrong_password"}
    assert await audit_rows(app, "identity:login:throttled")


async def test_failures_of_unknown_accounts_are_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await login_response(client, "nobody@example.com", WRONG_PASSWORD)
    rows = await audit_rows(app, "identity:login:failed")
    assert rows[0]["reason"] == "unknown_account"
    assert rows[0]["subject"] is None
    assert "nobody" not in str(rows[0]["details"])  # a reference, not the address


async def test_per_ip_backoff_slows_credential_stuffing(tmp_path: Path) -> None:
    """One address failing across many accounts is slowed down by its failure count (here
    without the request rate limit, which would stop it earlier)."""
    settings = identity_settings(tmp_path, ratelimit={"enabled": False})
    async with running_app(settings) as app, client_for(app, "198.51.100.9") as attacker:
        statuses = []
        for n in range(settings.login_ip_backoff_threshold + 2):
            response = await login_response(attacker, f"victim{n}@example.com", WRONG_PASSWORD)
            statuses.append(response.status_code)
    assert statuses[-1] == 429
    # Failures up to the threshold are free; the one beyond it starts the first delay.
    assert statuses.count(401) == settings.login_ip_backoff_threshold + 1


async def test_legacy_hash_is_upgraded_on_login(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    database = app.state.services.database
    legacy = bcrypt.hashpw(account.password.encode(), bcrypt.gensalt(rounds=4)).decode()
    async with database.engine.begin() as connection:
        await connection.execute(
            update(users).where(users.c.email == account.email).values(password_hash=legacy)
        )
    await login(client, account)
    async with database.engine.connect() as connection:
        stored = (
            await connection.execute(
                select(users.c.password_hash).where(users.c.email == account.email)
            )
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    assert await audit_rows(app, "identity:password:rehashed")
    await login(client, account)  # and the new hash verifies


async def test_revocation_elsewhere_stops_access_within_the_bound(
    tmp_path: Path, database_url: str
) -> None:
    """A session revoked by another worker (here: directly in the database) stops working
    within revocation_bound_seconds, without this worker being told."""
    settings = identity_settings(tmp_path, database_url=database_url, revocation_bound_seconds=1)
    async with running_app(settings) as app, client_for(app) as client:
        session = await login(client, await create_account(client, settings))
        assert (await client.get("/v1/account", headers=session.headers)).status_code == 200
        async with app.state.services.database.engine.begin() as connection:
            await connection.execute(
                update(sessions)
                .where(sessions.c.id == session.session_id)
                .values(revoked_at=app.state.services.clock.now())
            )
        start = time.monotonic()
        while (await client.get("/v1/account", headers=session.headers)).status_code == 200:
            assert time.monotonic() - start < 1.5, "still accepted beyond the bound"
            await asyncio.sleep(0.05)
        status = await client.get("/v1/sessions/current/status", headers=session.headers)
        assert_problem(status, 401, "invalid_token")
