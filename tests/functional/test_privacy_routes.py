"""Data export and erasure through the real app, on SQLite and PostgreSQL (no mocks).

Attack tests: a user cannot export or erase anyone else's data (IDOR), a cookie-mode DELETE
without its CSRF token is refused, an erased user's access and refresh tokens stop working,
the export holds no credential, and a stale session cannot export or erase (step-up).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    Account,
    Login,
    assert_problem,
    audit_rows,
    create_account,
    enroll_totp,
    identity_settings,
    login,
    login_response,
    refresh,
    register,
    setup_admin,
    step_up,
    token_in,
    wait_for_mail,
)

from bastion.authz.builtin.model import Role
from bastion.authz.store.models import OP_DELETE, authz_changes, authz_tuples
from bastion.clock import FrozenClock
from bastion.config import Settings
from bastion.identity.accounts.models import users
from bastion.identity.mfa.models import mfa_recovery_codes, mfa_totp
from bastion.identity.sessions.models import refresh_tokens, sessions
from bastion.identity.tokens.settings import AccessTokenSettings

app, client, browser = (
    identity_fixtures.app,
    identity_fixtures.client,
    identity_fixtures.browser,
)

ORIGIN = "https://testserver"
#: Longer than the step-up window (300 s), so a test can let the window pass with a live token.
TOKEN_TTL_SECONDS = 900


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return identity_settings(
        tmp_path,
        database_url=database_url,
        access_tokens=AccessTokenSettings(ttl_seconds=TOKEN_TTL_SECONDS),
    )


@pytest.fixture
async def user(client: httpx.AsyncClient, settings: Settings) -> Account:
    return await create_account(client, settings)


async def _me(client: httpx.AsyncClient, session: Login) -> str:
    return str((await client.get("/v1/account", headers=session.headers)).json()["id"])


async def _user_row(app: FastAPI, user_id: str) -> Any:
    async with app.state.services.database.engine.connect() as connection:
        return (await connection.execute(select(users).where(users.c.id == user_id))).one()


async def _count(app: FastAPI, query: Any) -> int:
    async with app.state.services.database.engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


# -- export ------------------------------------------------------------------------------------
async def test_export_holds_my_data_and_no_credential(
    app: FastAPI, client: httpx.AsyncClient, user: Account
) -> None:
    session = await enroll_totp(app, client, user)
    user_id = await _me(client, session)
    # Audit events are written by a background queue: wait until those so far are stored.
    assert await audit_rows(app, "identity:mfa:totp_activated")
    response = await client.get("/v1/account/export", headers=session.headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"].startswith("attachment")
    document = response.json()
    assert document["subject"] == f"user:{user_id}"
    assert document["profile"]["email"] == user.email
    assert document["profile"]["has_password"] is True
    assert [s["id"] for s in document["sessions"]] == [session.session_id]
    assert document["sessions"][0]["ip"] == "203.0.113.7"
    assert document["mfa"]["totp"]["activated_at"] is not None
    assert document["mfa"]["recovery_codes"]["total"] == len(user.recovery_codes)
    types = {e["type"] for e in document["security_events"]["events"]}
    assert {"identity:login:succeeded", "identity:mfa:totp_activated"} <= types
    # Nothing that would let the reader act as the user, or that is someone else's secret.
    text = response.text
    assert user.totp_secret is not None
    for secret in (user.totp_secret, session.access_token, session.refresh_token, user.password):
        assert secret not in text
    for code in user.recovery_codes:
        assert code not in text
    assert "password_hash" not in text
    assert "token_hash" not in text
    assert "secret_sealed" not in text
    [event] = await audit_rows(app, "privacy:data:exported")
    assert event["actor"] == event["subject"] == f"user:{user_id}"
    assert event["client_ip"] == "203.0.113.7"


async def test_export_needs_authentication(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/account/export"), 401, "not_authenticated")


async def test_export_needs_a_recent_authentication(
    app: FastAPI, client: httpx.AsyncClient, user: Account, clock: FrozenClock
) -> None:
    session = await login(client, user)
    clock.advance(timedelta(seconds=301))
    response = await client.get("/v1/account/export", headers=session.headers)
    assert_problem(response, 401, "step_up_required")
    await step_up(client, session, user)
    assert (await client.get("/v1/account/export", headers=session.headers)).status_code == 200


async def test_export_is_only_ever_my_own(
    client: httpx.AsyncClient, settings: Settings, user: Account
) -> None:
    victim = await create_account(client, settings)
    victim_id = await _me(client, await login(client, victim))
    session = await login(client, user)
    # No route takes a user id; query strings and path tricks do not select another account.
    for url in (
        f"/v1/account/export?user_id={victim_id}",
        f"/v1/account/export?subject=user:{victim_id}",
    ):
        response = await client.get(url, headers=session.headers)
        assert response.status_code == 200, response.text
        assert response.json()["profile"]["email"] == user.email
        assert victim.email not in response.text
    response = await client.get(f"/v1/account/export/{victim_id}", headers=session.headers)
    assert response.status_code in {404, 405}


async def test_export_is_rate_limited_per_user(client: httpx.AsyncClient, user: Account) -> None:
    session = await login(client, user)
    statuses = [
        (await client.get("/v1/account/export", headers=session.headers)).status_code
        for _ in range(6)
    ]
    assert statuses == [200] * 5 + [429]


# -- self-service erasure ----------------------------------------------------------------------
async def test_erasing_my_account_ends_everything(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, user: Account
) -> None:
    session = await enroll_totp(app, client, user)
    other = await login(client, user)
    user_id = await _me(client, session)
    response = await client.delete("/v1/account", headers=session.headers)
    assert response.status_code == 204, response.text
    # Every token of every session stops working.
    for live in (session, other):
        assert_problem(await client.get("/v1/account", headers=live.headers), 401, "invalid_token")
        assert (await refresh(client, live.refresh_token)).status_code == 401
    assert (await login_response(client, user.email, user.password)).status_code == 401
    row = await _user_row(app, user_id)
    assert row.email == row.email_normalized == f"erased:{user_id}"
    assert row.display_name != user.display_name
    assert (row.password_hash, row.disabled, row.is_admin) == (None, True, False)
    assert await _count(app, select(func.count()).where(mfa_totp.c.user_id == user_id)) == 0
    codes = select(func.count()).where(mfa_recovery_codes.c.user_id == user_id)
    assert await _count(app, codes) == 0
    owned = select(sessions.c.id).where(sessions.c.user_id == user_id)
    assert (
        await _count(app, select(func.count()).where(refresh_tokens.c.session_id.in_(owned))) == 0
    )
    personal = select(func.count()).where(
        sessions.c.user_id == user_id, sessions.c.ip.is_not(None) | sessions.c.revoked_at.is_(None)
    )
    assert await _count(app, personal) == 0
    [event] = await audit_rows(app, "privacy:account:erased")
    assert event["actor"] == event["subject"] == f"user:{user_id}"
    # The audit trail is kept, and still verifies.
    report = await app.state.services.audit_log.verify(None)
    assert report.intact


async def test_an_erased_email_can_register_again(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, user: Account
) -> None:
    session = await login(client, user)
    old_id = await _me(client, session)
    assert (await client.delete("/v1/account", headers=session.headers)).status_code == 204
    assert (await register(client, user.email, "another long passphrase 42")).status_code == 202
    # The second confirmation mail to the address (the first was the erased account's).
    token = token_in(await wait_for_mail(settings, user.email, "verify_email", after=1))
    verified = await client.post("/v1/accounts/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.text
    again = Account(user.email, "another long passphrase 42")
    new_session = await login(client, again)
    assert await _me(client, new_session) != old_id


async def test_cookie_erasure_needs_the_csrf_token(
    app: FastAPI, browser: httpx.AsyncClient, settings: Settings
) -> None:
    account = await create_account(browser, settings)
    response = await browser.post(
        "/v1/sessions",
        json={"email": account.email, "password": account.password, "transport": "cookie"},
        headers={"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 200, response.text
    csrf = response.json()["csrf_token"]
    assert_problem(await browser.delete("/v1/account"), 403, "csrf_failed")
    forged = await browser.delete("/v1/account", headers={"X-CSRF-Token": "forged"})
    assert_problem(forged, 403, "csrf_failed")
    assert (await browser.get("/v1/account")).json()["email"] == account.email
    headers = {"X-CSRF-Token": csrf, "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
    erased = await browser.delete("/v1/account", headers=headers)
    assert erased.status_code == 204, erased.text
    cleared = " ".join(erased.headers.get_list("set-cookie"))
    assert "__Host-access=" in cleared
    assert "max-age=0" in cleared.lower()


async def test_erasure_needs_a_recent_authentication(
    app: FastAPI, client: httpx.AsyncClient, user: Account, clock: FrozenClock
) -> None:
    session = await login(client, user)
    clock.advance(timedelta(seconds=301))
    assert_problem(
        await client.delete("/v1/account", headers=session.headers), 401, "step_up_required"
    )
    assert (await client.get("/v1/account", headers=session.headers)).status_code == 200


async def test_erasure_is_all_or_nothing(
    app: FastAPI, client: httpx.AsyncClient, user: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.privacy import erasure  # noqa: PLC0415 - the module whose step fails

    session = await enroll_totp(app, client, user)
    user_id = await _me(client, session)

    async def fail(*_: object) -> None:
        raise RuntimeError("disk full")

    # The last step fails: everything before it must be rolled back.
    monkeypatch.setattr(erasure, "_pseudonymize", fail)
    with pytest.raises(RuntimeError):
        await app.state.services.privacy.erase(user_id, actor="test", scope={})
    assert (await client.get("/v1/account", headers=session.headers)).status_code == 200
    assert await _count(app, select(func.count()).where(mfa_totp.c.user_id == user_id)) == 1
    assert (await _user_row(app, user_id)).email == user.email
    assert await audit_rows(app, "privacy:account:erased") == []


# -- administrator erasure ---------------------------------------------------------------------
async def test_admin_erases_an_account_once(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, user: Account
) -> None:
    admin_account = await setup_admin(app, client)
    admin = await login(client, admin_account)
    admin_id = await _me(client, admin)
    victim = await login(client, user)
    user_id = await _me(client, victim)
    url = f"/v1/admin/users/{user_id}/erase"
    assert (await client.post(url, headers=admin.headers)).status_code == 204
    assert_problem(await client.get("/v1/account", headers=victim.headers), 401, "invalid_token")
    assert (await refresh(client, victim.refresh_token)).status_code == 401
    # A second erasure, or an unknown account: the same 404.
    assert_problem(await client.post(url, headers=admin.headers), 404, "not_found")
    unknown = await client.post("/v1/admin/users/no-such-user/erase", headers=admin.headers)
    assert_problem(unknown, 404, "not_found")
    [event] = await audit_rows(app, "privacy:account:erased")
    assert (event["actor"], event["subject"]) == (f"user:{admin_id}", f"user:{user_id}")


async def test_a_user_cannot_erase_another(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, user: Account
) -> None:
    victim = await create_account(client, settings)
    victim_session = await login(client, victim)
    victim_id = await _me(client, victim_session)
    attacker = await login(client, user)
    response = await client.post(f"/v1/admin/users/{victim_id}/erase", headers=attacker.headers)
    assert_problem(response, 403, "forbidden")
    assert (await client.get("/v1/account", headers=victim_session.headers)).status_code == 200
    assert (await _user_row(app, victim_id)).email == victim.email


async def test_admin_erasure_needs_a_recent_step_up(
    app: FastAPI, client: httpx.AsyncClient, user: Account, clock: FrozenClock
) -> None:
    admin = await login(client, await setup_admin(app, client))
    user_id = await _me(client, await login(client, user))
    clock.advance(timedelta(seconds=301))
    response = await client.post(f"/v1/admin/users/{user_id}/erase", headers=admin.headers)
    assert_problem(response, 401, "step_up_required")


async def test_erasure_removes_the_accounts_grants(
    app: FastAPI, client: httpx.AsyncClient, user: Account
) -> None:
    admin = await login(client, await setup_admin(app, client))
    user_id = await _me(client, await login(client, user))
    system = app.state.services.system_admin.system
    await system.grant_role(user_id, Role.ADMIN, actor=None, scope={})
    entity = f"user:{user_id}"
    granted = select(func.count()).where(authz_tuples.c.user == entity)
    assert await _count(app, granted) == 1
    assert await app.state.services.identity.admin.allows(user_id, "can_read_users")
    erased = await client.post(f"/v1/admin/users/{user_id}/erase", headers=admin.headers)
    assert erased.status_code == 204, erased.text
    assert await _count(app, granted) == 0
    deletes = select(func.count()).where(
        authz_changes.c.user == entity, authz_changes.c.operation == OP_DELETE
    )
    assert await _count(app, deletes) == 1
    # The engine sees the change: the former administrator is denied.
    assert not await app.state.services.identity.admin.allows(user_id, "can_read_users")


async def test_the_last_administrator_cannot_be_erased(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin_account = await setup_admin(app, client)
    session = await login(client, admin_account)
    admin_id = await _me(client, session)
    response = await client.delete("/v1/account", headers=session.headers)
    assert_problem(response, 409, "last_administrator")
    # Nothing happened: the session lives, the grant and the factor are still there.
    assert (await client.get("/v1/account", headers=session.headers)).status_code == 200
    assert await app.state.services.identity.admin.allows(admin_id, "can_read_users")
    assert await _count(app, select(func.count()).where(mfa_totp.c.user_id == admin_id)) == 1


async def test_concurrent_erasures_erase_once(
    app: FastAPI, client: httpx.AsyncClient, user: Account
) -> None:
    user_id = await _me(client, await login(client, user))
    privacy = app.state.services.privacy
    results = await asyncio.gather(
        *(privacy.erase(user_id, actor="test", scope={}) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["AccountNotFound", "NoneType"]
    assert len(await audit_rows(app, "privacy:account:erased")) == 1
