"""Every sensitive route of the real app demands step-up, read from the route table.

"Sensitive" is the maintained list :data:`bastion.identity.mfa.stepup.SENSITIVE_ROUTES`
(method + path patterns) plus every ``/v1/admin/`` route: a new admin route, or a new route
matching the list, without the step-up dependency fails this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from tests.functional.identity_helpers import identity_settings

from bastion.app import create_app
from bastion.identity.mfa.stepup import is_sensitive, requires_step_up


def _calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _routes(app: FastAPI) -> Iterator[tuple[str, str, RouteContext]]:
    """Every (method, path) of the app, through included routers (their effective routes carry
    the router-level dependencies too)."""
    for route in iter_route_contexts(app.routes):
        if route.path is None or not route.methods or getattr(route, "dependant", None) is None:
            continue
        for method in sorted(route.methods):
            yield method, route.path, route


def unprotected_sensitive_routes(app: FastAPI) -> list[str]:
    missing = []
    for method, path, route in _routes(app):
        if not is_sensitive(method, path):
            continue
        if not any(requires_step_up(call) is not None for call in _calls(route.dependant)):
            missing.append(f"{method} {path}")
    return missing


def sensitive_routes(app: FastAPI) -> list[str]:
    return [f"{m} {p}" for m, p, _ in _routes(app) if is_sensitive(m, p)]


def test_every_sensitive_route_requires_step_up(tmp_path: Path) -> None:
    app = create_app(identity_settings(tmp_path))
    found = sensitive_routes(app)
    # The known sensitive operations are there (the test is not vacuous).
    for expected in (
        "POST /v1/account/password",
        "POST /v1/account/email",
        "POST /v1/account/mfa/totp",
        "DELETE /v1/account/mfa/totp",
        "POST /v1/account/mfa/recovery-codes",
        "GET /v1/admin/users",
        "POST /v1/admin/users/{user_id}/disable",
        "POST /v1/admin/users/{user_id}/mfa/reset",
    ):
        assert expected in found, (expected, found)
    missing = unprotected_sensitive_routes(app)
    assert missing == [], (
        f"sensitive routes without step-up: {missing}. Depend on services.identity.step_up "
        "(it returns the Principal), e.g. APIRouter(dependencies=[Depends(step_up)])."
    )


def test_a_new_admin_route_without_step_up_is_caught(tmp_path: Path) -> None:
    app = create_app(identity_settings(tmp_path))
    principal = app.state.services.identity.principal

    @app.post("/v1/admin/users/{user_id}/promote")
    async def promote(user_id: str, who: object = Depends(principal)) -> None:
        return None

    @app.post("/v1/account/mfa/webauthn/register")
    async def register(who: object = Depends(principal)) -> None:
        return None

    assert set(unprotected_sensitive_routes(app)) >= {
        "POST /v1/admin/users/{user_id}/promote",
        "POST /v1/account/mfa/webauthn/register",
    }


def test_non_sensitive_routes_are_not_listed() -> None:
    assert not is_sensitive("GET", "/v1/account")
    assert not is_sensitive("POST", "/v1/account/mfa/totp/activate")
    assert not is_sensitive("POST", "/v1/sessions")
    assert is_sensitive("GET", "/v1/admin/anything")
    assert is_sensitive("DELETE", "/v1/account")
