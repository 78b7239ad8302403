"""Attack tests: stolen refresh tokens, revocation and logout, and one user reaching another's
sessions or events (IDOR).

Refresh token reuse: a thief and the legitimate client both hold the same refresh token; which
ever refreshes second presents a token that was already rotated. That is the signal: the whole
session (its current refresh token and its access tokens) is revoked, so the thief's fresh pair
dies too, and ``token:refresh:reuse_detected`` is recorded.

Access tokens are JWTs verified without a database round trip, so a revoked session's access
token may keep working for a bounded time (default 5 s); the tests measure that it stops within
that bound (polling, never sleeping longer than bound + 1 s).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    OTHER_PASSWORD,
    PASSWORD,
    Account,
    Login,
    as_login,
    assert_problem,
    audit_rows,
    client_for,
    create_account,
    eventually,
    identity_settings,
    jwt_parts,
    login,
    login_response,
    refresh,
    running_app,
    setup_admin,
    token_in,
    wait_for_mail,
)

from bastion.clock import FrozenClock
from bastion.config import Settings

# Shared fixtures (see identity_fixtures); this module defines only its variants.
settings, app, client, account = (
    identity_fixtures.settings,
    identity_fixtures.app,
    identity_fixtures.client,
    identity_fixtures.account,
)
# Real time: revocation is measured in seconds as it happens.
clock = identity_fixtures.system_clock


#: Issue 4: "a revoked session's access tokens stop working within ... (default at most 5 s)".
REVOCATION_BOUND = float(Settings.model_fields["revocation_bound_seconds"].default)
REUSE_EVENT = "token:refresh:reuse_detected"
#: A concurrent retry of a rotated refresh token within this grace gets the same successor.
REFRESH_GRACE = int(Settings.model_fields["refresh_grace_seconds"].default)
POLL = 0.05


async def _status(client: httpx.AsyncClient, session: Login) -> int:
    return (await client.get("/v1/account", headers=session.headers)).status_code


async def assert_stops_within_bound(
    client: httpx.AsyncClient, session: Login, clock: FrozenClock | None = None
) -> float:
    """The session's access token is refused (401 invalid_token) within the bound. With a
    frozen clock, the clock moves in step with real time while polling, so a cache expiring by
    either one expires."""

    async def refused() -> bool:
        if clock is not None:
            clock.advance(timedelta(seconds=POLL))
        return await _status(client, session) == 401

    took = await eventually(refused, within=REVOCATION_BOUND + 1, interval=POLL)
    response = await client.get("/v1/account", headers=session.headers)
    assert_problem(response, 401, "invalid_token")
    return took


def past_reuse_grace(clock: FrozenClock) -> None:
    """Move past the short grace in which a concurrent retry of the same refresh token gets
    the same successor (``refresh_grace_seconds``)."""
    clock.advance(timedelta(seconds=REFRESH_GRACE + 1))


@dataclass
class Frozen:
    app: FastAPI
    client: httpx.AsyncClient
    settings: Settings
    clock: FrozenClock
    account: Account


@pytest.fixture
async def frozen(tmp_path: Path, database_url: str) -> AsyncIterator[Frozen]:
    """Default settings on a frozen clock, to step past the reuse grace without sleeping."""
    clock = FrozenClock(datetime.now(UTC))
    settings = identity_settings(tmp_path / "frozen", database_url=database_url)
    async with running_app(settings, clock=clock) as app, client_for(app) as client:
        account = await create_account(client, settings)
        yield Frozen(app, client, settings, clock, account)


def test_the_default_revocation_bound_is_at_most_5_seconds() -> None:
    assert REVOCATION_BOUND <= 5


# -- refresh reuse ---------------------------------------------------------------------------
async def test_refresh_rotates_and_a_rotated_token_is_single_use(frozen: Frozen) -> None:
    client = frozen.client
    first = await login(client, frozen.account)
    response = await refresh(client, first.refresh_token)
    assert response.status_code == 200, response.text
    second = as_login(response)
    assert second.refresh_token != first.refresh_token
    assert second.session_id == first.session_id
    assert await _status(client, second) == 200
    past_reuse_grace(frozen.clock)
    assert_problem(await refresh(client, first.refresh_token), 401, "invalid_token")


async def test_refresh_reuse_revokes_the_whole_session(frozen: Frozen) -> None:
    client = frozen.client
    legit = await login(client, frozen.account)
    other_device = await login(client, frozen.account)
    stolen = legit.refresh_token
    thief = as_login(await refresh(client, stolen))  # the thief refreshes first
    assert await _status(client, thief) == 200
    past_reuse_grace(frozen.clock)
    # The legitimate client's refresh presents the rotated token: reuse detected.
    assert_problem(await refresh(client, stolen), 401, "invalid_token")
    # The thief's pair is dead: the refresh token at once, the access token within the bound.
    assert_problem(await refresh(client, thief.refresh_token), 401, "invalid_token")
    await assert_stops_within_bound(client, thief, frozen.clock)
    # Only that session: the user's other device is untouched.
    assert await _status(client, other_device) == 200
    assert (await refresh(client, other_device.refresh_token)).status_code == 200
    rows = await audit_rows(frozen.app, REUSE_EVENT)
    assert len(rows) == 1, rows
    assert legit.session_id in str(rows[0])


async def test_reuse_is_detected_without_grace_too(tmp_path: Path, database_url: str) -> None:
    """With the grace set to 0, the very next reuse revokes (no clock games)."""
    settings = identity_settings(tmp_path, database_url=database_url, refresh_grace_seconds=0)
    async with running_app(settings) as app, client_for(app) as client:
        session = await login(client, await create_account(client, settings))
        successor = as_login(await refresh(client, session.refresh_token))
        assert_problem(await refresh(client, session.refresh_token), 401, "invalid_token")
        assert_problem(await refresh(client, successor.refresh_token), 401, "invalid_token")
        await assert_stops_within_bound(client, successor)
        assert len(await audit_rows(app, REUSE_EVENT)) == 1


async def test_a_retry_within_the_grace_does_not_fork_the_session(frozen: Frozen) -> None:
    """Within the grace, the same token gets the same successor (or a refusal), never a second
    live refresh token: otherwise a thief racing the client inside the grace keeps a working
    chain after the client moves on."""
    client = frozen.client
    session = await login(client, frozen.account)
    successor = as_login(await refresh(client, session.refresh_token))
    frozen.clock.advance(timedelta(seconds=1))
    retry = await refresh(client, session.refresh_token)
    assert retry.status_code in {200, 401}, retry.text
    if retry.status_code == 200:
        assert retry.json()["refresh_token"] == successor.refresh_token
    # The chain goes on from the successor, once.
    onward = await refresh(client, successor.refresh_token)
    assert onward.status_code == 200, onward.text
    past_reuse_grace(frozen.clock)
    assert_problem(await refresh(client, successor.refresh_token), 401, "invalid_token")


@pytest.mark.parametrize(
    "token", ["", "x", "x" * 43, "x" * 5000, "bst_rt_" + "A" * 43, "null", "../../etc/passwd"]
)
async def test_invalid_refresh_tokens_are_refused_alike(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await refresh(client, token)
    assert response.status_code in {401, 422}, response.text
    if response.status_code == 401:
        assert_problem(response, 401, "invalid_token")


async def test_an_access_token_is_not_a_refresh_token(
    client: httpx.AsyncClient, account: Account
) -> None:
    session = await login(client, account)
    response = await refresh(client, session.access_token)
    assert response.status_code in {401, 422}, response.text  # 422: longer than any refresh token
    assert "access_token" not in response.text
    # and a refresh token is not an access token
    response = await client.get(
        "/v1/account", headers={"Authorization": f"Bearer {session.refresh_token}"}
    )
    assert_problem(response, 401, "invalid_token")


# -- logout and revocation -------------------------------------------------------------------
async def test_logout_stops_the_access_token_within_the_bound(
    client: httpx.AsyncClient, account: Account
) -> None:
    session = await login(client, account)
    other = await login(client, account)
    assert await _status(client, session) == 200
    response = await client.delete("/v1/sessions/current", headers=session.headers)
    assert response.status_code == 204, response.text
    assert_problem(await refresh(client, session.refresh_token), 401, "invalid_token")
    await assert_stops_within_bound(client, session)
    assert await _status(client, other) == 200


async def test_revoking_one_session_by_id(client: httpx.AsyncClient, account: Account) -> None:
    current = await login(client, account)
    stolen = await login(client, account)
    response = await client.delete(f"/v1/sessions/{stolen.session_id}", headers=current.headers)
    assert response.status_code == 204, response.text
    assert_problem(await refresh(client, stolen.refresh_token), 401, "invalid_token")
    await assert_stops_within_bound(client, stolen)
    assert await _status(client, current) == 200


async def test_logout_everywhere(client: httpx.AsyncClient, account: Account) -> None:
    sessions = [await login(client, account) for _ in range(3)]
    response = await client.delete("/v1/sessions", headers=sessions[0].headers)
    assert response.status_code == 204, response.text
    for session in sessions:
        assert_problem(await refresh(client, session.refresh_token), 401, "invalid_token")
        await assert_stops_within_bound(client, session)


async def test_password_change_revokes_the_other_sessions(
    client: httpx.AsyncClient, account: Account
) -> None:
    current = await login(client, account)
    stolen = await login(client, account)
    response = await client.post(
        "/v1/account/password",
        json={"current_password": account.password, "new_password": OTHER_PASSWORD},
        headers=current.headers,
    )
    assert response.status_code == 204, response.text
    assert_problem(await refresh(client, stolen.refresh_token), 401, "invalid_token")
    await assert_stops_within_bound(client, stolen)
    assert await _status(client, current) == 200


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, account: Account
) -> None:
    """A stolen access token alone cannot take the account over."""
    session = await login(client, account)
    response = await client.post(
        "/v1/account/password",
        json={"current_password": OTHER_PASSWORD, "new_password": OTHER_PASSWORD + "!"},
        headers=session.headers,
    )
    assert_problem(response, 401, "invalid_credentials")
    assert (await login_response(client, account.email, account.password)).status_code == 200


async def test_password_reset_revokes_every_session_and_its_token_is_single_use(
    client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    stolen = await login(client, account)
    response = await client.post("/v1/password/forgot", json={"email": account.email})
    assert response.status_code == 202
    token = token_in(await wait_for_mail(settings, account.email, "password_reset"))
    response = await client.post(
        "/v1/password/reset", json={"token": token, "new_password": OTHER_PASSWORD}
    )
    assert response.status_code == 204, response.text
    assert_problem(await refresh(client, stolen.refresh_token), 401, "invalid_token")
    await assert_stops_within_bound(client, stolen)
    again = await client.post(
        "/v1/password/reset", json={"token": token, "new_password": OTHER_PASSWORD + " again"}
    )
    assert_problem(again, 400, "token_invalid")
    assert (await login_response(client, account.email, OTHER_PASSWORD)).status_code == 200
    await wait_for_mail(settings, account.email, "password_changed")


# -- IDOR ------------------------------------------------------------------------------------
async def test_a_user_cannot_see_or_revoke_another_users_sessions(
    client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    alice = await login(client, account)
    bob = await login(client, await create_account(client, settings))
    listed = await client.get("/v1/sessions", headers=alice.headers)
    assert listed.status_code == 200, listed.text
    ids = {s["id"] for s in listed.json()["sessions"]}
    assert alice.session_id in ids
    assert bob.session_id not in ids
    current = [s for s in listed.json()["sessions"] if s["current"]]
    assert [s["id"] for s in current] == [alice.session_id]

    response = await client.delete(f"/v1/sessions/{bob.session_id}", headers=alice.headers)
    assert_problem(response, 404, "not_found")
    unknown = await client.delete(f"/v1/sessions/{bob.session_id}0", headers=alice.headers)
    assert unknown.status_code == response.status_code  # no oracle: foreign == nonexistent
    # Alice logging out everywhere does not touch Bob.
    assert (await client.delete("/v1/sessions", headers=alice.headers)).status_code == 204
    assert await _status(client, bob) == 200
    assert (await refresh(client, bob.refresh_token)).status_code == 200


async def test_a_user_cannot_read_another_users_events(
    client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    bob_account = await create_account(client, settings)
    bob = await login(client, bob_account)
    for _ in range(3):  # events of Bob's: failed logins, a session
        await login_response(client, bob_account.email, OTHER_PASSWORD)
    await login(client, bob_account)
    alice = await login(client, account)

    async def events(session: Login, **params: str) -> httpx.Response:
        return await client.get("/v1/account/events", headers=session.headers, params=params)

    bob_events = (await events(bob)).json()
    alice_response = await events(alice)
    assert alice_response.status_code == 200, alice_response.text
    alice_events = alice_response.json()["events"]
    text = str(alice_events)
    assert bob_account.email not in text
    assert bob.session_id not in text
    bob_id = jwt_parts(bob.access_token)[1]["sub"]
    assert bob_id not in text
    # Bob's cursor and any user id in the query must not widen Alice's view.
    for params in (
        {"cursor": bob_events.get("next_cursor") or ""},
        {"user_id": bob_id},
        {"subject": bob_id},
    ):
        response = await events(alice, **params)
        assert response.status_code in {200, 400, 422}, response.text
        if response.status_code == 200:
            assert bob_account.email not in str(response.json())
            assert bob.session_id not in str(response.json())
            assert bob_id not in str(response.json()["events"])


ADMIN_ACTIONS = ("disable", "enable", "unlock", "revoke-sessions", "force-password-reset")


async def test_admin_endpoints_deny_ordinary_users(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    """Deny by default: every admin operation, tried by an ordinary user against another user,
    is refused (403) and changes nothing; without credentials it is 401."""
    await setup_admin(app, client)
    attacker = await login(client, account)
    victim_account = await create_account(client, settings)
    victim = await login(client, victim_account)
    victim_id = jwt_parts(victim.access_token)[1]["sub"]
    attempts = [
        ("GET", "/v1/admin/users"),
        ("GET", f"/v1/admin/users?q={victim_account.email}"),
        ("GET", f"/v1/admin/users/{victim_id}"),
        *(("POST", f"/v1/admin/users/{victim_id}/{action}") for action in ADMIN_ACTIONS),
    ]
    for method, path in attempts:
        response = await client.request(method, path, headers=attacker.headers)
        assert_problem(response, 403, "forbidden")
        assert victim_account.email not in response.text
        assert_problem(await client.request(method, path), 401, "not_authenticated")
    # Nothing happened to the victim: the session lives, the password works.
    assert await _status(client, victim) == 200
    assert (await refresh(client, victim.refresh_token)).status_code == 200
    assert (await login_response(client, victim_account.email, PASSWORD)).status_code == 200


async def test_admin_endpoints_work_for_an_admin(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    """The control for the test above: the same calls succeed for the administrator."""
    admin = await login(client, await setup_admin(app, client))
    victim = await login(client, account)
    victim_id = jwt_parts(victim.access_token)[1]["sub"]
    listed = await client.get("/v1/admin/users", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    response = await client.post(
        f"/v1/admin/users/{victim_id}/revoke-sessions", headers=admin.headers
    )
    assert response.status_code == 204, response.text
    await assert_stops_within_bound(client, victim)
