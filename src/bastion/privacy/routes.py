"""HTTP routes of privacy: my data export, my erasure, and the administrator's erasure.

* ``GET /v1/account/export``: everything about the caller (step-up: a stolen access token that
  is no longer fresh cannot download the account's history; per-user limit
  :data:`EXPORT_POLICY`, as each export reads every table).
* ``DELETE /v1/account``: erase my account (step-up, as every route of ``SENSITIVE_ROUTES``;
  CSRF-checked in cookie mode by the authenticator). 204, and the session cookies are cleared;
  409 ``last_administrator`` for the only permanent administrator (no one could administer).
* ``POST /v1/admin/users/{user_id}/erase``: an administrator with ``can_manage_users`` (decided
  by the engine) erases an account, at a recent step-up like every ``/v1/admin/`` route.

The caller's own account is always taken from the authenticated principal, never from the
request: there is no user id to tamper with on the self-service routes (IDOR).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Path, Request, status
from fastapi.responses import JSONResponse
from starlette.responses import Response

from bastion.authz.builtin import on_system
from bastion.authz.builtin.model import Permission
from bastion.http.responses import problems
from bastion.identity.sessions.auth import Principal
from bastion.identity.sessions.transport import clear_session_cookies
from bastion.protections.ratelimit.dependency import rate_limit
from bastion.protections.ratelimit.policies import KeyKind, Policy
from bastion.services import Services

__all__ = ["EXPORT_POLICY", "include"]

#: Exports per user per hour: a complete export is an expensive read, and a user needs few.
EXPORT_POLICY = Policy.per("privacy-export", 5, 3600, keys=[KeyKind.USER])
MAX_ID_CHARS = 64
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def include(app: FastAPI, services: Services) -> None:
    identity = services.identity
    privacy = services.privacy
    step_up = identity.step_up

    # Decided by the engine through the SDK, as every /v1/admin route (route-table test).
    authz = services.system_admin.authorizer(identity.principal)
    limit_exports = rate_limit(EXPORT_POLICY)
    router = APIRouter(tags=["privacy"])

    @router.get(
        "/v1/account/export",
        summary="Everything Bastion holds about me, as JSON (GDPR Art. 15/20). Step-up.",
        responses=problems(401, 403, 429, 503),
    )
    async def export(
        request: Request,
        who: Principal = Depends(step_up),
        # After the authentication: a per-user limit needs the user it names.
        _: None = Depends(limit_exports),
    ) -> JSONResponse:
        document = await privacy.export(who.user_id, request.scope)
        headers = {
            **NO_STORE,
            "Content-Disposition": 'attachment; filename="bastion-account-export.json"',
        }
        return JSONResponse(document, headers=headers)

    @router.delete(
        "/v1/account",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Erase my account (GDPR Art. 17). Step-up; ends every session.",
        responses=problems(401, 403, 404, 409, 429, 503),
    )
    async def erase_me(request: Request, who: Principal = Depends(step_up)) -> Response:
        await privacy.erase(who.user_id, actor=who.subject, scope=request.scope)
        response = Response(status_code=status.HTTP_204_NO_CONTENT, headers=NO_STORE)
        clear_session_cookies(response, identity.cookies)
        return response

    admin = APIRouter(
        prefix="/v1/admin/users",
        tags=["admin", "privacy"],
        # The permission first: a caller without it learns nothing of the step-up policy.
        dependencies=[Depends(on_system(authz, Permission.MANAGE_USERS)), Depends(step_up)],
        responses=problems(401, 403, 404, 409, 422, 503),
    )

    @admin.post(
        "/{user_id}/erase",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Erase an account (GDPR Art. 17): credentials, sessions, grants; pseudonymized.",
    )
    async def erase_user(
        request: Request,
        user_id: str = Path(min_length=1, max_length=MAX_ID_CHARS),
        who: Principal = Depends(identity.principal),
    ) -> Response:
        await privacy.erase(user_id, actor=who.subject, scope=request.scope)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    app.include_router(router)
    app.include_router(admin)
