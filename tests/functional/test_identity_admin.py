"""The admin API: deny by default, list and search, disable/enable, unlock, revoke sessions,
force a password reset."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    OTHER_PASSWORD,
    WRONG_PASSWORD,
    Account,
    Login,
    assert_problem,
    audit_rows,
    create_account,
    login,
    login_response,
    setup_admin,
    token_in,
    wait_for_mail,
)

from bastion.config import Settings

# Shared fixtures (see identity_fixtures); this module defines only its variants.
settings, app, client = (
    identity_fixtures.settings,
    identity_fixtures.app,
    identity_fixtures.client,
)

ACTIONS = ("disable", "enable", "unlock", "revoke-sessions", "force-password-reset")


@pytest.fixture
async def admin(app: FastAPI, client: httpx.AsyncClient) -> Login:
    return await login(client, await setup_admin(app, client))


@pytest.fixture
async def user(client: httpx.AsyncClient, settings: Settings) -> Account:
    return await create_account(client, settings)


async def _user_id(client: httpx.AsyncClient, account: Account) -> str:
    session = await login(client, account)
    return str((await client.get("/v1/account", headers=session.headers)).json()["id"])


async def test_admin_api_is_denied_by_default(
    client: httpx.AsyncClient, admin: Login, user: Account
) -> None:
    user_id = await _user_id(client, user)
    session = await login(client, user)
    paths = [("GET", "/v1/admin/users"), ("GET", f"/v1/admin/users/{user_id}")]
    paths += [("POST", f"/v1/admin/users/{user_id}/{action}") for action in ACTIONS]
    for method, path in paths:
        assert_problem(await client.request(method, path), 401, "not_authenticated")
        response = await client.request(method, path, headers=session.headers)
        assert_problem(response, 403, "forbidden")


async def test_list_search_and_get(client: httpx.AsyncClient, admin: Login, user: Account) -> None:
    listed = await client.get("/v1/admin/users", headers=admin.headers)
    assert listed.status_code == 200, listed.text
    emails = {u["email"] for u in listed.json()["users"]}
    assert user.email in emails
    found = await client.get(
        "/v1/admin/users", params={"q": user.email[:10].upper()}, headers=admin.headers
    )
    assert [u["email"] for u in found.json()["users"]] == [user.email]
    wildcard = await client.get("/v1/admin/users", params={"q": "%"}, headers=admin.headers)
    assert wildcard.json()["users"] == []  # LIKE wildcards are escaped
    user_id = found.json()["users"][0]["id"]
    one = await client.get(f"/v1/admin/users/{user_id}", headers=admin.headers)
    assert one.json()["email"] == user.email
    missing = await client.get("/v1/admin/users/nobody", headers=admin.headers)
    assert_problem(missing, 404, "not_found")


async def test_pagination(client: httpx.AsyncClient, settings: Settings, admin: Login) -> None:
    for _ in range(3):
        await create_account(client, settings)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        page = (await client.get("/v1/admin/users", params=params, headers=admin.headers)).json()
        seen += [u["id"] for u in page["users"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 4


async def test_disable_and_enable(
    app: FastAPI, client: httpx.AsyncClient, admin: Login, user: Account
) -> None:
    user_id = await _user_id(client, user)
    session = await login(client, user)
    response = await client.post(f"/v1/admin/users/{user_id}/disable", headers=admin.headers)
    assert response.status_code == 204, response.text
    assert_problem(await client.get("/v1/account", headers=session.headers), 401, "invalid_token")
    assert_problem(
        await login_response(client, user.email, user.password), 401, "invalid_credentials"
    )
    response = await client.post(f"/v1/admin/users/{user_id}/enable", headers=admin.headers)
    assert response.status_code == 204
    assert (await login_response(client, user.email, user.password)).status_code == 200
    rows = await audit_rows(app, "identity:account:disabled")
    assert rows[0]["subject"] == f"user:{user_id}"
    assert rows[0]["actor"].startswith("user:")


async def test_unlock_ends_a_lockout(
    app: FastAPI, client: httpx.AsyncClient, admin: Login, user: Account, settings: Settings
) -> None:
    user_id = await _user_id(client, user)
    for _ in range(settings.login_backoff_threshold + 1):
        await login_response(client, user.email, WRONG_PASSWORD)
    locked = await login_response(client, user.email, user.password)
    assert_problem(locked, 429, "too_many_attempts")
    assert int(locked.headers["retry-after"]) >= 1
    response = await client.post(f"/v1/admin/users/{user_id}/unlock", headers=admin.headers)
    assert response.status_code == 204
    assert (await login_response(client, user.email, user.password)).status_code == 200
    assert await audit_rows(app, "identity:account:locked")
    assert await audit_rows(app, "identity:account:unlocked")


async def test_revoke_sessions(client: httpx.AsyncClient, admin: Login, user: Account) -> None:
    user_id = await _user_id(client, user)
    session = await login(client, user)
    response = await client.post(
        f"/v1/admin/users/{user_id}/revoke-sessions", headers=admin.headers
    )
    assert response.status_code == 204
    assert_problem(await client.get("/v1/account", headers=session.headers), 401, "invalid_token")


async def test_force_password_reset(
    client: httpx.AsyncClient, settings: Settings, admin: Login, user: Account
) -> None:
    user_id = await _user_id(client, user)
    session = await login(client, user)
    response = await client.post(
        f"/v1/admin/users/{user_id}/force-password-reset", headers=admin.headers
    )
    assert response.status_code == 204
    assert_problem(await client.get("/v1/account", headers=session.headers), 401, "invalid_token")
    assert_problem(
        await login_response(client, user.email, user.password), 401, "invalid_credentials"
    )
    token = token_in(await wait_for_mail(settings, user.email, "password_reset"))
    done = await client.post(
        "/v1/password/reset", json={"token": token, "new_password": OTHER_PASSWORD}
    )
    assert done.status_code == 204, done.text
    assert (await login_response(client, user.email, OTHER_PASSWORD)).status_code == 200


async def test_hostile_ids_and_search_text_never_reach_the_database(
    client: httpx.AsyncClient, admin: Login
) -> None:
    """A NUL (PostgreSQL refuses it) or a lone surrogate in a path or query is a clean 4xx."""
    for bad in ("%00", "a%00b", "%ED%A0%80", "..%2F..%2Fetc", "x" * 65):
        response = await client.get(f"/v1/admin/users/{bad}", headers=admin.headers)
        assert response.status_code in {404, 422}, (bad, response.text)
        response = await client.delete(f"/v1/sessions/{bad}", headers=admin.headers)
        assert response.status_code in {404, 422}, (bad, response.text)
    for q in ("%00", "a%00", "%1B"):
        response = await client.get(f"/v1/admin/users?q={q}", headers=admin.headers)
        assert_problem(response, 422, "validation_failed")
    response = await client.get("/v1/admin/users?q=%ED%A0%80", headers=admin.headers)
    assert response.status_code in {200, 422}, response.text  # invalid UTF-8 is replaced
    response = await client.get("/v1/admin/users", params={"cursor": "\x00"}, headers=admin.headers)
    assert_problem(response, 422, "validation_failed")
