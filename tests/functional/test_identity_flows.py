"""Identity end to end, through the real app: setup, registration, login, refresh, logout,
password change and reset, profile, security events. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import FastAPI
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    OTHER_PASSWORD,
    PASSWORD,
    Account,
    assert_problem,
    audit_rows,
    create_account,
    login,
    login_response,
    refresh,
    register,
    setup_admin,
    token_in,
    unique_email,
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


async def test_setup_creates_the_first_admin_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await setup_admin(app, client)
    session = await login(client, admin)
    profile = (await client.get("/v1/account", headers=session.headers)).json()
    assert profile["is_admin"] is True
    assert profile["email_verified"] is True
    assert await app.state.services.setup_tokens.is_setup_complete()
    # A second token (an operator restarting) cannot make a second first admin.
    token = await app.state.services.setup_tokens.issue()
    body = {"setup_token": token, "email": unique_email(), "password": PASSWORD,
            "display_name": "Second"}  # fmt: skip
    again = await client.post("/v1/setup", json=body)
    assert again.status_code in {201, 409}  # a valid token is the operator's own decision
    bad = await client.post("/v1/setup", json={**body, "setup_token": "bst_setup_nope"})
    assert_problem(bad, 400, "setup_token_invalid")


async def test_setup_refuses_a_weak_password_and_keeps_the_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    token = await app.state.services.setup_tokens.issue()
    body = {"setup_token": token, "email": unique_email(), "display_name": "Admin"}
    weak = await client.post("/v1/setup", json={**body, "password": "password123"})
    problem = assert_problem(weak, 422, "password_rejected")
    assert "common" in problem["reasons"]
    ok = await client.post("/v1/setup", json={**body, "password": PASSWORD})
    assert ok.status_code == 201, ok.text


async def test_register_verify_login(
    client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    session = await login(client, account)
    assert session.body["token_type"] == "Bearer"
    assert session.body["expires_in"] == 300
    profile = await client.get("/v1/account", headers=session.headers)
    assert profile.status_code == 200
    body = profile.json()
    assert set(body) == {"id", "email", "display_name", "email_verified", "is_admin", "created_at"}
    assert body["email"] == account.email
    assert body["email_verified"] is True
    assert body["is_admin"] is False


async def test_unverified_account_cannot_log_in(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    email = unique_email()
    await register(client, email)
    await wait_for_mail(settings, email, "verify_email")
    assert_problem(await login_response(client, email, PASSWORD), 401, "invalid_credentials")


async def test_verification_token_is_single_use(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    email = unique_email()
    await register(client, email)
    token = token_in(await wait_for_mail(settings, email, "verify_email"))
    first = await client.post("/v1/accounts/verify-email", json={"token": token})
    assert first.status_code == 200
    again = await client.post("/v1/accounts/verify-email", json={"token": token})
    assert_problem(again, 400, "token_invalid")


async def test_a_stranger_registering_first_cannot_take_the_account(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Pre-hijacking: the attacker registers the victim's address with their own password;
    the victim registers too and confirms their own mail. The attacker's password never works
    and the attacker's (older) link is void."""
    email = unique_email("victim")
    await register(client, email, password=OTHER_PASSWORD)  # the attacker
    attacker_mail = await wait_for_mail(settings, email, "verify_email")
    await register(client, email, password=PASSWORD)  # the victim
    victim_mail = await wait_for_mail(settings, email, "verify_email", after=1)
    verified = await client.post("/v1/accounts/verify-email", json={"token": token_in(victim_mail)})
    assert verified.status_code == 200
    stale = await client.post("/v1/accounts/verify-email", json={"token": token_in(attacker_mail)})
    assert_problem(stale, 400, "token_invalid")
    assert_problem(await login_response(client, email, OTHER_PASSWORD), 401, "invalid_credentials")
    assert (await login_response(client, email, PASSWORD)).status_code == 200


async def test_weak_password_is_refused_at_registration(client: httpx.AsyncClient) -> None:
    response = await register(client, unique_email(), password="Password123!")
    problem = assert_problem(response, 422, "password_rejected")
    assert problem["reasons"]


async def test_refresh_rotates_and_reuse_revokes_the_session(
    app: FastAPI, client: httpx.AsyncClient, account: Account, clock: FrozenClock
) -> None:
    session = await login(client, account)
    first = await refresh(client, session.refresh_token)
    assert first.status_code == 200, first.text
    rotated = first.json()
    assert rotated["refresh_token"] != session.refresh_token
    assert rotated["session_id"] == session.session_id
    clock.advance(timedelta(seconds=11))  # past the retry grace
    reused = await refresh(client, session.refresh_token)
    assert_problem(reused, 401, "invalid_token")
    # The whole family is gone: the successor no longer works, nor does the access token.
    assert_problem(await refresh(client, rotated["refresh_token"]), 401, "invalid_token")
    headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert_problem(await client.get("/v1/account", headers=headers), 401, "invalid_token")
    rows = await audit_rows(app, "token:refresh:reuse_detected")
    assert len(rows) == 1
    assert rows[0]["details"]["session_id"] == session.session_id


async def test_concurrent_retry_within_grace_gets_the_same_successor(
    client: httpx.AsyncClient, account: Account
) -> None:
    session = await login(client, account)
    first, second = await asyncio.gather(
        refresh(client, session.refresh_token), refresh(client, session.refresh_token)
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["refresh_token"] == second.json()["refresh_token"]
    # The chain stays single and usable.
    third = await refresh(client, first.json()["refresh_token"])
    assert third.status_code == 200, third.text


async def test_unknown_and_malformed_refresh_tokens(client: httpx.AsyncClient) -> None:
    for token in ("bst_ref_" + "A" * 43, "garbage", "x" * 128):
        assert_problem(await refresh(client, token), 401, "invalid_token")


async def test_idle_and_absolute_lifetimes_end_sessions(
    client: httpx.AsyncClient, account: Account, clock: FrozenClock, settings: Settings
) -> None:
    session = await login(client, account)
    clock.advance(timedelta(seconds=settings.session_idle_seconds + 1))
    assert_problem(await refresh(client, session.refresh_token), 401, "invalid_token")

    session = await login(client, account)
    token = session.refresh_token
    step = timedelta(seconds=settings.session_idle_seconds - 60)
    elapsed = timedelta(0)
    while elapsed + step < timedelta(seconds=settings.session_absolute_seconds):
        clock.advance(step)
        elapsed += step
        response = await refresh(client, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
    clock.advance(step)
    assert_problem(await refresh(client, token), 401, "invalid_token")


async def test_logout_this_one_and_all(client: httpx.AsyncClient, account: Account) -> None:
    a, b, c = [await login(client, account) for _ in range(3)]
    listed = (await client.get("/v1/sessions", headers=a.headers)).json()["sessions"]
    assert {s["id"] for s in listed} == {a.session_id, b.session_id, c.session_id}
    assert [s["current"] for s in listed if s["id"] == a.session_id] == [True]
    assert set(listed[0]) == {"id", "created_at", "last_seen_at", "ip", "user_agent", "amr",
                              "current"}  # fmt: skip
    assert (
        await client.delete(f"/v1/sessions/{b.session_id}", headers=a.headers)
    ).status_code == 204
    assert_problem(await client.get("/v1/account", headers=b.headers), 401, "invalid_token")
    assert (await client.delete("/v1/sessions/current", headers=c.headers)).status_code == 204
    assert_problem(await client.get("/v1/account", headers=c.headers), 401, "invalid_token")
    assert_problem(await refresh(client, c.refresh_token), 401, "invalid_token")
    d = await login(client, account)
    assert (await client.delete("/v1/sessions", headers=d.headers)).status_code == 204
    for gone in (a, d):
        assert_problem(await client.get("/v1/account", headers=gone.headers), 401, "invalid_token")


async def test_someone_elses_session_is_not_found(
    client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    mine = await login(client, account)
    theirs = await login(client, await create_account(client, settings))
    response = await client.delete(f"/v1/sessions/{theirs.session_id}", headers=mine.headers)
    assert_problem(response, 404, "not_found")
    assert (await client.get("/v1/account", headers=theirs.headers)).status_code == 200
    unknown = await client.delete("/v1/sessions/no-such-session", headers=mine.headers)
    assert_problem(unknown, 404, "not_found")


async def test_change_password_keeps_this_session_and_ends_the_others(
    client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    this, other = await login(client, account), await login(client, account)
    wrong = await client.post(
        "/v1/account/password",
        json={"current_password": OTHER_PASSWORD, "new_password": OTHER_PASSWORD},
        headers=this.headers,
    )
    assert_problem(wrong, 401, "invalid_credentials")
    changed = await client.post(
        "/v1/account/password",
        json={"current_password": PASSWORD, "new_password": OTHER_PASSWORD},
        headers=this.headers,
    )
    assert changed.status_code == 204, changed.text
    assert (await client.get("/v1/account", headers=this.headers)).status_code == 200
    assert_problem(await client.get("/v1/account", headers=other.headers), 401, "invalid_token")
    assert_problem(
        await login_response(client, account.email, PASSWORD), 401, "invalid_credentials"
    )
    assert (await login_response(client, account.email, OTHER_PASSWORD)).status_code == 200
    await wait_for_mail(settings, account.email, "password_changed")


async def test_password_reset(
    client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    session = await login(client, account)
    assert (
        await client.post("/v1/password/forgot", json={"email": account.email})
    ).status_code == 202
    token = token_in(await wait_for_mail(settings, account.email, "password_reset"))
    weak = await client.post(
        "/v1/password/reset", json={"token": token, "new_password": "hunter2hunter2"}
    )
    assert_problem(weak, 422, "password_rejected")
    done = await client.post(
        "/v1/password/reset", json={"token": token, "new_password": OTHER_PASSWORD}
    )
    assert done.status_code == 204, done.text
    again = await client.post(
        "/v1/password/reset", json={"token": token, "new_password": OTHER_PASSWORD}
    )
    assert_problem(again, 400, "token_invalid")
    assert_problem(await client.get("/v1/account", headers=session.headers), 401, "invalid_token")
    assert (await login_response(client, account.email, OTHER_PASSWORD)).status_code == 200
    await wait_for_mail(settings, account.email, "password_changed")


async def test_reset_token_expires_after_30_minutes(
    client: httpx.AsyncClient, settings: Settings, account: Account, clock: FrozenClock
) -> None:
    await client.post("/v1/password/forgot", json={"email": account.email})
    token = token_in(await wait_for_mail(settings, account.email, "password_reset"))
    clock.advance(timedelta(minutes=30, seconds=1))
    late = await client.post(
        "/v1/password/reset", json={"token": token, "new_password": OTHER_PASSWORD}
    )
    assert_problem(late, 400, "token_invalid")


async def test_profile_update_is_strict(client: httpx.AsyncClient, account: Account) -> None:
    session = await login(client, account)
    updated = await client.patch(
        "/v1/account", json={"display_name": "New Name"}, headers=session.headers
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["display_name"] == "New Name"
    for field, value in (("is_admin", True), ("email_verified", False), ("id", "x"),
                         ("created_at", "2020-01-01T00:00:00Z"), ("email", "a@b.c")):  # fmt: skip
        response = await client.patch(
            "/v1/account", json={"display_name": "X", field: value}, headers=session.headers
        )
        assert_problem(response, 422, "validation_failed")
    assert (await client.get("/v1/account", headers=session.headers)).json()["is_admin"] is False


async def test_change_email_needs_confirmation(
    client: httpx.AsyncClient, settings: Settings, account: Account
) -> None:
    session = await login(client, account)
    new_email = unique_email("moved")
    response = await client.post(
        "/v1/account/email",
        json={"new_email": new_email, "current_password": PASSWORD},
        headers=session.headers,
    )
    assert response.status_code == 202, response.text
    await wait_for_mail(settings, account.email, "email_change_requested")
    token = token_in(await wait_for_mail(settings, new_email, "verify_email"))
    assert (await client.get("/v1/account", headers=session.headers)).json()[
        "email"
    ] == account.email
    assert (
        await client.post("/v1/accounts/verify-email", json={"token": token})
    ).status_code == 200
    assert (await client.get("/v1/account", headers=session.headers)).json()["email"] == new_email
    assert (await login_response(client, new_email, PASSWORD)).status_code == 200
    await wait_for_mail(settings, account.email, "email_changed")  # the outbox delivers later


async def test_my_security_events(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    await login_response(client, account.email, OTHER_PASSWORD)
    session = await login(client, account)
    await app.state.services.audit._queue.join()
    response = await client.get("/v1/account/events", headers=session.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    types = [e["type"] for e in body["events"]]
    assert "identity:login:succeeded" in types
    assert "identity:login:failed" in types
    assert set(body["events"][0]) == {"id", "time", "type", "outcome", "ip", "user_agent"}
    page = await client.get(
        "/v1/account/events",
        params={"cursor": str(body["events"][0]["id"])},
        headers=session.headers,
    )
    assert page.status_code == 200
    assert all(e["id"] < body["events"][0]["id"] for e in page.json()["events"])
    bad = await client.get(
        "/v1/account/events", params={"cursor": "1; DROP"}, headers=session.headers
    )
    assert_problem(bad, 422, "validation_failed")


async def test_jwks_and_cache_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    (key,) = response.json()["keys"]
    assert key["kty"] == "OKP"
    assert key["alg"] == "EdDSA"
    assert "d" not in key
