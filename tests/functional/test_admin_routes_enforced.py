"""Every ``/v1/admin`` route of the real app enforces its permission with the SDK.

Read from the route table: each administration route must depend on a dependency built by
``bastion.sdk.authz.Authorizer.require`` (:func:`~bastion.sdk.authz.requirement_of`), with the
permission listed here. A new admin route guarded by an ad-hoc check (``admin.allows(...)``),
or by nothing, fails this test; so does a route whose permission changes unnoticed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from tests.functional import identity_fixtures
from tests.functional.identity_helpers import (
    assert_problem,
    audit_rows,
    create_account,
    identity_settings,
    login,
)

from bastion.app import create_app
from bastion.config import Settings
from bastion.http.errors import Forbidden
from bastion.sdk.authz import requirement_of

app, client = identity_fixtures.app, identity_fixtures.client

SYSTEM = "system"
#: Each admin route and the requirements it declares (relation, object type).
EXPECTED: dict[str, set[tuple[str, str]]] = {
    "GET /v1/admin/users": {("can_read_users", SYSTEM)},
    "GET /v1/admin/users/{user_id}": {("can_read_users", SYSTEM)},
    "POST /v1/admin/users/{user_id}/disable": {
        ("can_read_users", SYSTEM),
        ("can_manage_users", SYSTEM),
    },
    "POST /v1/admin/users/{user_id}/enable": {
        ("can_read_users", SYSTEM),
        ("can_manage_users", SYSTEM),
    },
    "POST /v1/admin/users/{user_id}/unlock": {
        ("can_read_users", SYSTEM),
        ("can_unlock_users", SYSTEM),
    },
    "POST /v1/admin/users/{user_id}/revoke-sessions": {
        ("can_read_users", SYSTEM),
        ("can_revoke_sessions", SYSTEM),
    },
    "POST /v1/admin/users/{user_id}/force-password-reset": {
        ("can_read_users", SYSTEM),
        ("can_manage_users", SYSTEM),
    },
    "POST /v1/admin/users/{user_id}/mfa/reset": {("can_reset_mfa", SYSTEM)},
    "POST /v1/admin/users/{user_id}/erase": {("can_manage_users", SYSTEM)},
    "GET /v1/admin/audit/events": {("can_read_audit", SYSTEM)},
    "POST /v1/admin/elevations/{elevation_id}/approve": {("can_approve_elevations", SYSTEM)},
    "POST /v1/admin/elevations/{elevation_id}/deny": {("can_approve_elevations", SYSTEM)},
    "POST /v1/admin/elevations/{elevation_id}/revoke": {("can_revoke", "elevation")},
    "GET /v1/admin/alerts/dead-letters": {("can_administer", SYSTEM)},
}
#: Self-service routes under /v1/admin, open to any authenticated user at a recent step-up by
#: design: anyone may ask for a role and list their own requests (the list widens to everyone's
#: only for ``can_approve_elevations``, asked through the same Authorizer's ``allows``).
SELF_SERVICE = {"POST /v1/admin/elevations", "GET /v1/admin/elevations"}


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def admin_requirements(app: FastAPI) -> dict[str, set[tuple[str, str]]]:
    """Each ``/v1/admin`` route (through included routers) and the SDK requirements found
    anywhere in its dependency tree."""
    found: dict[str, set[tuple[str, str]]] = {}
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if route.path is None or not route.path.startswith("/v1/admin") or dependant is None:
            continue
        requirements = {
            (r.relation, r.object_type)
            for r in (requirement_of(call) for call in _calls(dependant))
            if r is not None
        }
        for method in sorted(route.methods or ()):
            found[f"{method} {route.path}"] = requirements
    return found


def unguarded(found: dict[str, set[tuple[str, str]]]) -> list[str]:
    """Admin routes with no SDK requirement, besides the listed exemptions."""
    return sorted(r for r, reqs in found.items() if not reqs and r not in SELF_SERVICE)


def test_every_admin_route_declares_its_permission_with_the_sdk(tmp_path: Path) -> None:
    found = admin_requirements(create_app(identity_settings(tmp_path)))
    assert unguarded(found) == [], "admin routes without an SDK require(...)"
    for route, expected in EXPECTED.items():
        assert found.get(route) == expected, route
    # The exemptions exist and are still exempt (not stale).
    for route in SELF_SERVICE:
        assert found.get(route) == set(), route
    assert set(found) == set(EXPECTED) | SELF_SERVICE


def test_an_admin_route_with_an_ad_hoc_check_is_caught(tmp_path: Path) -> None:
    app = create_app(identity_settings(tmp_path))
    services = app.state.services
    principal, step_up = services.identity.principal, services.identity.step_up

    async def ad_hoc(who: object = Depends(principal)) -> None:
        if not await services.identity.admin.allows(getattr(who, "user_id", ""), "can_administer"):
            raise Forbidden

    @app.post("/v1/admin/users/{user_id}/promote", dependencies=[Depends(ad_hoc)])
    async def promote(user_id: str, who: object = Depends(step_up)) -> None:
        return None

    assert unguarded(admin_requirements(app)) == ["POST /v1/admin/users/{user_id}/promote"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return identity_settings(tmp_path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/admin/users"),
        ("POST", "/v1/admin/users/{me}/mfa/reset"),
        ("GET", "/v1/admin/audit/events"),
        ("GET", "/v1/admin/alerts/dead-letters"),
        ("POST", "/v1/admin/users/{me}/erase"),
    ],
)
async def test_a_user_without_the_permission_is_refused_and_logged(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, method: str, path: str
) -> None:
    """Deny by default, through the SDK: a plain user gets 403 problem+json before any step-up
    challenge, and the engine's refusal is in the decision log with the request."""
    user = await login(client, await create_account(client, settings))
    me = (await client.get("/v1/account", headers=user.headers)).json()["id"]
    response = await client.request(method, path.format(me=me), headers=user.headers)
    assert_problem(response, 403, "forbidden")
    denied = [
        r
        for r in await audit_rows(app, "authz:check:denied")
        if r["subject"].startswith("system:bastion#") and r["subject"].endswith(f"@user:{me}")
    ]
    assert len(denied) == 1
    assert denied[0]["request_id"] == response.headers["x-request-id"]
