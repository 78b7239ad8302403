"""HTTP routes of account administration, under ``/v1/admin/users``.

Deny by default: the router itself depends on :func:`require_admin`, so every route added here
is for enabled administrators only; anyone else authenticated gets 403 ``forbidden``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, status
from pydantic import BaseModel
from starlette.responses import Response

from bastion.http.errors import Forbidden
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
    def of(cls, user: User) -> AdminUserOut:
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            email_verified=user.email_verified,
            is_admin=user.is_admin,
            disabled=user.disabled,
            created_at=user.created_at,
            updated_at=user.updated_at,
            password_changed_at=user.password_changed_at,
        )


class UsersOut(BaseModel):
    users: list[AdminUserOut]
    next_cursor: str | None


UserId = Path(min_length=1, max_length=MAX_ID_CHARS)


def include(
    app: FastAPI, admin: AdminService, principal: Callable[..., Awaitable[Principal]]
) -> None:
    async def require_admin(who: Principal = Depends(principal)) -> Principal:
        if not await admin.is_admin(who.user_id):
            raise Forbidden
        return who

    router = APIRouter(
        prefix="/v1/admin/users",
        tags=["admin"],
        dependencies=[Depends(require_admin)],
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

    def no_content() -> Response:
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/{user_id}/disable",
        summary="Disable; ends every session.",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
    )
    async def disable(
        request: Request, user_id: str = UserId, who: Principal = Depends(require_admin)
    ) -> Response:
        await admin.set_disabled(user_id, disabled=True, actor=who.subject, scope=request.scope)
        return no_content()

    @router.post(
        "/{user_id}/enable",
        summary="Enable a disabled account.",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
    )
    async def enable(
        request: Request, user_id: str = UserId, who: Principal = Depends(require_admin)
    ) -> Response:
        await admin.set_disabled(user_id, disabled=False, actor=who.subject, scope=request.scope)
        return no_content()

    @router.post(
        "/{user_id}/unlock",
        summary="Clear the login backoff.",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
    )
    async def unlock(
        request: Request, user_id: str = UserId, who: Principal = Depends(require_admin)
    ) -> Response:
        await admin.unlock(user_id, actor=who.subject, scope=request.scope)
        return no_content()

    @router.post(
        "/{user_id}/revoke-sessions",
        summary="End every session.",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
    )
    async def revoke_sessions(
        request: Request, user_id: str = UserId, who: Principal = Depends(require_admin)
    ) -> Response:
        await admin.revoke_sessions(user_id, actor=who.subject, scope=request.scope)
        return no_content()

    @router.post(
        "/{user_id}/force-password-reset",
        summary="Void the password, end every session, mail a reset token.",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
    )
    async def force_password_reset(
        request: Request, user_id: str = UserId, who: Principal = Depends(require_admin)
    ) -> Response:
        await admin.force_password_reset(user_id, actor=who.subject, scope=request.scope)
        return no_content()

    app.include_router(router)
