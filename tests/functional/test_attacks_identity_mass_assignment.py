"""Attack tests: mass assignment.

A client may set only whitelisted fields. ``is_admin``, ``email_verified``, ids and timestamps
sent to the profile update, to registration or to the setup call are refused (422
``validation_failed``) or ignored; either way the stored account is unchanged, which is what
these tests check after every attempt.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    DISPLAY_NAME,
    PASSWORD,
    Account,
    Login,
    assert_problem,
    login,
    login_response,
    register,
    unique_email,
    verify_email,
)

from bastion.config import Settings

# Shared fixtures (see identity_fixtures); this module defines only its variants.
settings, app, client, account = (
    identity_fixtures.settings,
    identity_fixtures.app,
    identity_fixtures.client,
    identity_fixtures.account,
)

PRIVILEGED: list[dict[str, Any]] = [
    {"is_admin": True},
    {"email_verified": True},
    {"id": "00000000-0000-0000-0000-000000000001"},
    {"created_at": "2000-01-01T00:00:00Z"},
    {"is_disabled": False},
    {"role": "admin"},
    {"roles": ["admin"]},
    {"password_hash": "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"},
]


async def _profile(client: httpx.AsyncClient, session: Login) -> dict[str, Any]:
    response = await client.get("/v1/account", headers=session.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("extra", PRIVILEGED, ids=lambda e: next(iter(e)))
async def test_profile_update_cannot_set_privileged_fields(
    client: httpx.AsyncClient, account: Account, extra: dict[str, Any]
) -> None:
    session = await login(client, account)
    before = await _profile(client, session)
    assert before["is_admin"] is False
    response = await client.patch(
        "/v1/account", json={"display_name": "New Name", **extra}, headers=session.headers
    )
    assert_problem(response, 422, "validation_failed")
    assert await _profile(client, session) == before  # atomic: not even the name changed


async def test_profile_update_cannot_change_the_email_directly(
    client: httpx.AsyncClient, account: Account
) -> None:
    """Changing the address needs re-verification; a PATCH must not take over another one."""
    session = await login(client, account)
    before = await _profile(client, session)
    response = await client.patch(
        "/v1/account", json={"email": unique_email("taken")}, headers=session.headers
    )
    assert response.status_code in {200, 422}, response.text
    assert await _profile(client, session) == before


async def test_profile_update_changes_the_display_name(
    client: httpx.AsyncClient, account: Account
) -> None:
    """The control: the whitelisted field does change."""
    session = await login(client, account)
    response = await client.patch(
        "/v1/account", json={"display_name": "New Name"}, headers=session.headers
    )
    assert response.status_code == 200, response.text
    assert (await _profile(client, session))["display_name"] == "New Name"


@pytest.mark.parametrize("extra", PRIVILEGED, ids=lambda e: next(iter(e)))
async def test_registration_cannot_set_privileged_fields(
    client: httpx.AsyncClient, settings: Settings, extra: dict[str, Any]
) -> None:
    email = unique_email()
    response = await register(client, email, **extra)
    assert response.status_code in {202, 422}, response.text
    if response.status_code == 422:
        assert response.json()["code"] == "validation_failed"
        # Refused outright: the address is free for an ordinary registration.
        assert (await register(client, email)).status_code == 202
    # Not verified by assertion: before the mail link is used the account either cannot log
    # in or reports itself unverified.
    early = await login_response(client, email, PASSWORD)
    assert early.status_code in {200, 401}, early.text
    if early.status_code == 200:
        session = Login(early.json()["access_token"], "", "", early.json())
        assert (await _profile(client, session))["email_verified"] is False
    await verify_email(client, settings, email)
    session = await login(client, Account(email, PASSWORD, DISPLAY_NAME))
    profile = await _profile(client, session)
    assert profile["is_admin"] is False
    assert profile["email_verified"] is True
    assert profile["id"] != extra.get("id")
    assert profile["created_at"] != extra.get("created_at")


async def test_a_regular_user_cannot_become_admin_through_setup(
    app: FastAPI, client: httpx.AsyncClient, account: Account
) -> None:
    """Setup needs the setup token; an existing account's credentials are not enough."""
    response = await client.post(
        "/v1/setup",
        json={
            "setup_token": "bst_setup_" + "A" * 43,
            "email": account.email,
            "password": account.password,
            "display_name": account.display_name,
        },
    )
    assert_problem(response, 400, "setup_token_invalid")
    session = await login(client, account)
    assert (await _profile(client, session))["is_admin"] is False


async def test_setup_cannot_be_replayed_once_an_admin_exists(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    token = await app.state.services.setup_tokens.issue()
    body = {"email": unique_email("admin"), "password": PASSWORD, "display_name": "Admin One"}
    first = await client.post("/v1/setup", json={"setup_token": token, **body})
    assert first.status_code == 201, first.text
    replay = await client.post(
        "/v1/setup", json={"setup_token": token, **body, "email": unique_email("admin2")}
    )
    assert_problem(replay, 400, "setup_token_invalid")
