"""Bastion's administration on its own engine: each role can do exactly its operations,
just-in-time elevation (four eyes, expiry by the clock, audit), and no IDOR on sessions.

Attack tests: a security auditor must not manage users, support must not read the audit
trail or disable accounts, a user must not approve their own elevation, an expired grant must
not be honoured, a user must not end another user's session.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
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
    setup_admin,
)

from bastion.authz.builtin import Role
from bastion.authz.builtin.model import SYSTEM_STORE_ID
from bastion.clock import FrozenClock
from bastion.config import Settings

app, client = identity_fixtures.app, identity_fixtures.client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite; several accounts enroll TOTP from the one test address, more than the default
    per-IP MFA budget allows in 15 minutes (that budget has its own tests)."""
    return identity_settings(tmp_path, ratelimit={"policies": {"mfa": {"limit": 1000}}})


#: (name, method, path template) of the administration operations under test.
OPERATIONS = (
    ("read_users", "GET", "/v1/admin/users/{id}"),
    ("unlock", "POST", "/v1/admin/users/{id}/unlock"),
    ("revoke_sessions", "POST", "/v1/admin/users/{id}/revoke-sessions"),
    ("reset_mfa", "POST", "/v1/admin/users/{id}/mfa/reset"),
    ("read_audit", "GET", "/v1/admin/audit/events"),
    ("manage_users", "POST", "/v1/admin/users/{id}/force-password-reset"),
    ("manage_authz", "GET", "/stores"),
)
ALLOWED: dict[str | None, set[str]] = {
    "admin": {name for name, _, _ in OPERATIONS},
    "security_auditor": {"read_users", "read_audit"},
    "support": {"read_users", "unlock", "revoke_sessions", "reset_mfa"},
    None: set(),
}


async def _user_id(client: httpx.AsyncClient, session: Login) -> str:
    return str((await client.get("/v1/account", headers=session.headers)).json()["id"])


async def _grant(app: FastAPI, user_id: str, role: Role) -> None:
    await app.state.services.system_admin.system.grant_role(user_id, role, actor=None, scope=None)


async def _call(client: httpx.AsyncClient, session: Login, op: str, target: str) -> int:
    method, template = next((m, p) for n, m, p in OPERATIONS if n == op)
    response = await client.request(method, template.format(id=target), headers=session.headers)
    return response.status_code


@pytest.mark.parametrize("role", ["admin", "security_auditor", "support", None])
async def test_each_role_can_do_exactly_its_operations(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, role: str | None
) -> None:
    await setup_admin(app, client)
    target = await _user_id(client, await login(client, await create_account(client, settings)))
    actor = await create_account(client, settings)
    actor_id = await _user_id(client, await login(client, actor))
    if role is not None:
        await _grant(app, actor_id, Role(role))
        # The MFA policy for administrators covers every staff role: enroll first.
        await enroll_totp(app, client, actor)
    session = await login(client, actor)
    for op, _, _ in OPERATIONS:
        code = await _call(client, session, op, target)
        if op in ALLOWED[role]:
            assert code < 300, (role, op, code)
        else:
            assert code == 403, (role, op, code)
    denied = await audit_rows(app, "authz:check:denied")
    assert any(r["subject"].endswith(f"@user:{actor_id}") for r in denied) == (
        len(ALLOWED[role]) < len(OPERATIONS)
    )


@pytest.mark.parametrize("role", ["admin", "support"])
async def test_a_staff_role_without_a_second_factor_must_enroll_first(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, role: str
) -> None:
    # The role comes from the engine only (no is_admin flag): the admin MFA policy still holds.
    await setup_admin(app, client)
    target = await _user_id(client, await login(client, await create_account(client, settings)))
    actor = await create_account(client, settings)
    await _grant(app, await _user_id(client, await login(client, actor)), Role(role))
    session = await login(client, actor)
    response = await client.get(f"/v1/admin/users/{target}", headers=session.headers)
    assert_problem(response, 403, "mfa_enrollment_required")
    await enroll_totp(app, client, actor)
    session = await login(client, actor)
    response = await client.get(f"/v1/admin/users/{target}", headers=session.headers)
    assert response.status_code == 200


async def _candidate(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> tuple[Account, Login]:
    """An account that may ask for elevation: the admin MFA policy wants a second factor first."""
    account = await create_account(client, settings)
    await enroll_totp(app, client, account)
    return account, await login(client, account)


async def _request(
    client: httpx.AsyncClient, session: Login, role: str, seconds: int = 3600
) -> httpx.Response:
    body = {"role": role, "duration_seconds": seconds, "reason": "ticket 4711: locked customer"}
    return await client.post("/v1/admin/elevations", json=body, headers=session.headers)


@pytest.fixture
async def admins(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> list[Login]:
    first = await login(client, await setup_admin(app, client))
    other = await setup_second_admin(app, client, settings)
    return [first, other]


async def setup_second_admin(app: FastAPI, client: httpx.AsyncClient, settings: Settings) -> Login:
    account = await create_account(client, settings)
    await _grant(app, await _user_id(client, await login(client, account)), Role.ADMIN)
    await enroll_totp(app, client, account)
    return await login(client, account)


async def test_elevation_is_approved_by_another_admin_and_expires_by_itself(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, admins: list[Login]
) -> None:
    clock: FrozenClock = app.state.services.clock
    target = await _user_id(client, await login(client, await create_account(client, settings)))
    account, user = await _candidate(app, client, settings)
    assert await _call(client, user, "unlock", target) == 403

    requested = await _request(client, user, "support")
    assert requested.status_code == 201, requested.text
    elevation: dict[str, Any] = requested.json()
    assert elevation["status"] == "pending"
    # The requester cannot approve their own request (not an approver at all).
    own = await client.post(f"/v1/admin/elevations/{elevation['id']}/approve", headers=user.headers)
    assert_problem(own, 403, "forbidden")
    approved = await client.post(
        f"/v1/admin/elevations/{elevation['id']}/approve", headers=admins[0].headers
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"

    assert await _call(client, user, "unlock", target) == 204
    assert await _call(client, user, "manage_users", target) == 403  # support only
    used = await audit_rows(app, "authz:elevation:used")
    # One per decision that held only thanks to the grant (router guard, then the operation).
    assert {r["details"]["permission"] for r in used} == {"can_read_users", "can_unlock_users"}
    assert all(r["details"]["roles"] == ["support"] for r in used)

    # Past the grant: refused, though the tuple is still in the index (engine + clock), and
    # the end is recorded when first observed.
    clock.advance(timedelta(hours=1, seconds=1))
    user = await login(client, account)
    assert await _call(client, user, "unlock", target) == 403
    expired = await audit_rows(app, "authz:elevation:expired")
    assert [r["details"]["elevation_id"] for r in expired] == [elevation["id"]]
    listed = await client.get("/v1/admin/elevations", headers=user.headers)
    assert [e["status"] for e in listed.json()["elevations"]] == ["expired"]
    assert len(await audit_rows(app, "authz:elevation:requested")) == 1
    assert len(await audit_rows(app, "authz:elevation:approved")) == 1


async def test_self_approval_is_refused_and_recorded(
    app: FastAPI, client: httpx.AsyncClient, admins: list[Login]
) -> None:
    first, other = admins
    # An administrator asks for a role they do not hold, then tries to approve it.
    requested = await _request(client, first, "security_auditor")
    assert requested.status_code == 201, requested.text
    elevation_id = requested.json()["id"]
    for action in ("approve", "deny"):
        response = await client.post(
            f"/v1/admin/elevations/{elevation_id}/{action}", headers=first.headers
        )
        assert_problem(response, 403, "elevation_self_approval")
    denied = await audit_rows(app, "authz:elevation:denied")
    assert {r["reason"] for r in denied} == {"self_approval"}
    assert all(r["outcome"] == "failure" for r in denied)
    # Still pending: another administrator decides.
    response = await client.post(f"/v1/admin/elevations/{elevation_id}/deny", headers=other.headers)
    assert response.json()["status"] == "denied"
    again = await client.post(f"/v1/admin/elevations/{elevation_id}/approve", headers=other.headers)
    assert_problem(again, 409, "elevation_not_pending")


async def test_revoked_grant_stops_at_once(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, admins: list[Login]
) -> None:
    target = await _user_id(client, await login(client, await create_account(client, settings)))
    _, user = await _candidate(app, client, settings)
    elevation_id = (await _request(client, user, "support")).json()["id"]
    await client.post(f"/v1/admin/elevations/{elevation_id}/approve", headers=admins[1].headers)
    assert await _call(client, user, "unlock", target) == 204
    revoked = await client.post(f"/v1/admin/elevations/{elevation_id}/revoke", headers=user.headers)
    assert revoked.json()["status"] == "revoked"
    assert await _call(client, user, "unlock", target) == 403
    assert len(await audit_rows(app, "authz:elevation:revoked")) == 1


async def test_elevation_input_is_bounded(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, admins: list[Login]
) -> None:
    _, user = await _candidate(app, client, settings)
    too_long = await _request(client, user, "admin", seconds=4 * 3600 + 1)
    assert_problem(too_long, 422, "elevation_duration_too_long")
    assert_problem(await _request(client, user, "root"), 422, "validation_failed")
    # Admins already hold admin: nothing to ask for.
    assert_problem(await _request(client, admins[0], "admin"), 409, "elevation_role_held")
    for _ in range(5):
        assert (await _request(client, user, "support")).status_code == 201
    assert_problem(await _request(client, user, "support"), 409, "elevation_too_many_pending")
    # Someone else's request is not confirmed to a stranger.
    _, stranger = await _candidate(app, client, settings)
    elevation_id = (await client.get("/v1/admin/elevations", headers=user.headers)).json()[
        "elevations"
    ][0]["id"]
    response = await client.post(
        f"/v1/admin/elevations/{elevation_id}/revoke", headers=stranger.headers
    )
    missing = await client.post(f"/v1/admin/elevations/{'0' * 32}/revoke", headers=stranger.headers)
    # Refused by the SDK's require (can_revoke on elevation:<id>, hide_existence): the same
    # 404 whether the request exists or not.
    assert_problem(response, 404, "not_found")
    assert_problem(missing, 404, "not_found")
    assert response.json()["detail"] == missing.json()["detail"]
    mine = await client.get("/v1/admin/elevations", headers=stranger.headers)
    assert mine.json()["elevations"] == []
    # An approver passes the check (can_approve_elevations from system): the request is only
    # pending, so there is no grant to end yet.
    by_admin = await client.post(
        f"/v1/admin/elevations/{elevation_id}/revoke", headers=admins[1].headers
    )
    assert_problem(by_admin, 409, "elevation_not_pending")
    assert (
        len(
            (await client.get("/v1/admin/elevations", headers=admins[1].headers)).json()[
                "elevations"
            ]
        )
        == 5
    )


async def test_bootstrap_admin_is_an_engine_tuple(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await login(client, await setup_admin(app, client))
    admin_id = await _user_id(client, admin)
    system = app.state.services.system_admin.system
    assert await system.roles(admin_id) == {"admin": None}
    # The decision is the engine's: withdrawing the tuple withdraws access at once, whatever
    # the mirror said before.
    await system.revoke_role(admin_id, Role.ADMIN, actor=None, scope=None)
    response = await client.get("/v1/admin/users", headers=admin.headers)
    assert_problem(response, 403, "forbidden")
    assert await app.state.services.authz.store.get_store(SYSTEM_STORE_ID)


async def test_a_user_cannot_end_another_users_session(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    alice = await login(client, await create_account(client, settings))
    bob = await login(client, await create_account(client, settings))
    response = await client.delete(f"/v1/sessions/{bob.session_id}", headers=alice.headers)
    assert_problem(response, 404, "not_found")
    still = await client.get("/v1/account", headers=bob.headers)
    assert still.status_code == 200
