"""HTTP routes of account administration, under ``/v1/admin/users``.

Deny by default: every route needs one permission of Bastion's built-in authorization model,
declared with the SDK's ``require`` (:mod:`bastion.authz.builtin.enforcement`), decided by the
engine and recorded in the decision log (``can_read_users`` to list and read,
``can_manage_users`` to disable, enable or force a password reset, ``can_unlock_users``,
``can_revoke_sessions``); the router itself needs ``can_read_users``, so a route added here
without its own permission is still closed to non-staff. Anyone else authenticated gets 403
``forbidden``. The router also depends on ``step_up``: every admin operation needs a recent
authentication at the administrator's level (401 ``step_up_required``, see
:mod:`bastion.identity.mfa.stepup`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol, Self

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, status
from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Scope

from bastion.authz.builtin.enforcement import on_system, system_authorizer
from bastion.authz.builtin.model import Permission
from bastion.http.responses import problems
from bastion.identity.accounts.users import User
from bastion.identity.admin.services import AdminService
from bastion.identity.fields import SearchText
from bastion.identity.sessions.auth import Principal

__all__ = ["include"]

MAX_ID_CHARS = 64


class AdminUserOut(BaseModel):
    id: str
    email: str
    display_name: str
    email_verified: bool
    is_admin: bool
    disabled: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime | None

    @classmethod
    def of(cls, user: User) -> Self:
        return cls.model_validate(user, from_attributes=True)


class UsersOut(BaseModel):
    users: list[AdminUserOut]
    next_cursor: str | None


UserId = Path(min_length=1, max_length=MAX_ID_CHARS)


class AdminAction(Protocol):
    """An account action of :class:`AdminService` (``user_id``, the acting administrator)."""

    def __call__(self, user_id: str, *, actor: str, scope: Scope) -> Awaitable[None]: ...


def include(
    app: FastAPI,
    admin: AdminService,
    principal: Callable[..., Awaitable[Principal]],
    step_up: Callable[..., Awaitable[Principal]],
) -> None:
    authz = system_authorizer(admin.authorizer, principal)
    router = APIRouter(
        prefix="/v1/admin/users",
        tags=["admin"],
        # The staff check first: a non-staff caller learns nothing of the step-up policy.
        dependencies=[Depends(on_system(authz, Permission.READ_USERS)), Depends(step_up)],
        responses=problems(401, 403, 404, 422, 503),
    )

    @router.get("", response_model=UsersOut, summary="List and search users.")
    async def list_users(
        q: SearchText | None = Query(default=None),
        cursor: str | None = Query(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    ) -> UsersOut:
        found, next_cursor = await admin.list_users(query=q, after=cursor)
        return UsersOut(users=[AdminUserOut.of(u) for u in found], next_cursor=next_cursor)

    @router.get("/{user_id}", response_model=AdminUserOut, summary="One user.")
    async def get_user(user_id: str = UserId) -> AdminUserOut:
        return AdminUserOut.of(await admin.get(user_id))

    # The account actions: POST, no body, 204; the acting administrator is recorded.
    manage = Permission.MANAGE_USERS
    actions: tuple[tuple[str, str, str, AdminAction, Permission], ...] = (
        ("disable", "disable", "Disable; ends every session.", admin.disable, manage),
        ("enable", "enable", "Enable a disabled account.", admin.enable, manage),
        ("unlock", "unlock", "Clear the login backoff.", admin.unlock, Permission.UNLOCK_USERS),
        (
            "revoke-sessions",
            "revoke_sessions",
            "End every session.",
            admin.revoke_sessions,
            Permission.REVOKE_SESSIONS,
        ),
        (
            "force-password-reset",
            "force_password_reset",
            "Void the password, end every session, mail a reset token.",
            admin.force_password_reset,
            manage,
        ),
    )
    for path, name, summary, act, permission in actions:
        router.add_api_route(
            f"/{{user_id}}/{path}",
            _action_endpoint(act, principal),
            dependencies=[Depends(on_system(authz, permission))],
            methods=["POST"],
            name=name,
            summary=summary,
            status_code=status.HTTP_204_NO_CONTENT,
            response_class=Response,
        )

    app.include_router(router)


def _action_endpoint(
    act: AdminAction, principal: Callable[..., Awaitable[Principal]]
) -> Callable[..., Awaitable[Response]]:
    async def endpoint(
        request: Request, user_id: str = UserId, who: Principal = Depends(principal)
    ) -> Response:
        await act(user_id, actor=who.subject, scope=request.scope)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return endpoint
