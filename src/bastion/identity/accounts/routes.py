"""HTTP routes of accounts: setup, registration, verification, password reset, profile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal, Self

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from bastion.http.responses import problems
from bastion.identity._direct import DirectRoute, api_route
from bastion.identity.accounts.events import list_events
from bastion.identity.accounts.users import User
from bastion.identity.fields import DisplayName, Email, OpaqueToken, Password
from bastion.identity.services import IdentityServices
from bastion.identity.sessions.auth import Principal

__all__ = ["include"]

#: Cursors are event ids: digits only, bounded below the BIGINT range.
MAX_CURSOR_CHARS = 18


class _Strict(BaseModel):
    # Mass assignment: a field the model does not list is refused (422), never ignored.
    model_config = ConfigDict(extra="forbid")


class SetupIn(_Strict):
    setup_token: OpaqueToken
    email: Email
    password: Password
    display_name: DisplayName


class RegisterIn(_Strict):
    email: Email
    password: Password
    display_name: DisplayName


class TokenIn(_Strict):
    token: OpaqueToken


class ForgotIn(_Strict):
    email: Email


class ResetIn(_Strict):
    token: OpaqueToken
    new_password: Password


class ChangePasswordIn(_Strict):
    current_password: Password
    new_password: Password


class ChangeEmailIn(_Strict):
    new_email: Email
    current_password: Password


class ProfileIn(_Strict):
    """Only the display name can be set; ids, roles, verification and times never."""

    display_name: DisplayName


class AdminOut(BaseModel):
    id: str
    email: str
    display_name: str
    is_admin: bool


class ProfileOut(BaseModel):
    id: str
    email: str
    display_name: str
    email_verified: bool
    is_admin: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> Self:
        """The answer's fields read off ``user`` (only those this model declares)."""
        return cls.model_validate(user, from_attributes=True)


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


class Verified(BaseModel):
    status: Literal["verified"] = "verified"


class EventOut(BaseModel):
    id: int
    time: datetime
    type: str
    outcome: str
    ip: str | None
    user_agent: str | None


class EventsOut(BaseModel):
    events: list[EventOut]
    next_cursor: str | None


def include(
    app: FastAPI,
    identity: IdentityServices,
    principal: Callable[..., Awaitable[Principal]],
) -> None:
    accounts = identity.accounts
    router = APIRouter(tags=["accounts"])

    @router.post(
        "/v1/setup",
        status_code=status.HTTP_201_CREATED,
        response_model=AdminOut,
        summary="Create the first administrator with the one-time setup token.",
        responses=problems(400, 409, 422, 429, 503),
    )
    async def setup(body: SetupIn, request: Request) -> AdminOut:
        user = await accounts.setup_admin(
            setup_token=body.setup_token,
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            scope=request.scope,
        )
        return AdminOut(
            id=user.id, email=user.email, display_name=user.display_name, is_admin=user.is_admin
        )

    @router.post(
        "/v1/accounts",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Register. Always 202: the address's owner gets a confirmation (or a notice).",
        responses=problems(422, 429, 503),
    )
    async def register(body: RegisterIn, request: Request) -> Accepted:
        await accounts.register(
            email=body.email,
            password=body.password,
            display_name=body.display_name,
            scope=request.scope,
        )
        return Accepted()

    @router.post(
        "/v1/accounts/verify-email",
        response_model=Verified,
        summary="Confirm an email address with the token mailed to it.",
        responses=problems(400, 422, 429),
    )
    async def verify_email(body: TokenIn, request: Request) -> Verified:
        await accounts.verify_email(body.token, request.scope)
        return Verified()

    @router.post(
        "/v1/password/forgot",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Mail a password reset token. Always 202.",
        responses=problems(422, 429, 503),
    )
    async def forgot(body: ForgotIn, request: Request) -> Accepted:
        await accounts.forgot_password(body.email, request.scope)
        return Accepted()

    @router.post(
        "/v1/password/reset",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Set a new password with a reset token; ends every session.",
        responses=problems(400, 422, 429, 503),
    )
    async def reset(body: ResetIn, request: Request) -> Response:
        await accounts.reset_password(body.token, body.new_password, request.scope)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get(
        "/v1/account",
        response_model=ProfileOut,
        summary="My profile.",
        responses=problems(401, 403, 503),
    )
    async def profile(who: Principal = Depends(principal)) -> ProfileOut:
        return ProfileOut.of(await accounts.get(who.user_id))

    async def profile_direct(request: Request, response: Response, _: None) -> ProfileOut:
        # The same as ``profile``, with its one dependency called by hand (see ``_direct``).
        who = await identity.resolve_principal(request, response)
        return ProfileOut.of(await accounts.get(who.user_id))

    hot = DirectRoute(api_route(router, "/v1/account", "GET"), profile_direct)

    @router.patch(
        "/v1/account",
        response_model=ProfileOut,
        summary="Update my profile (display name only).",
        responses=problems(401, 403, 422, 503),
    )
    async def update_profile(
        body: ProfileIn, request: Request, who: Principal = Depends(principal)
    ) -> ProfileOut:
        user = await accounts.update_profile(
            who.user_id, display_name=body.display_name, scope=request.scope
        )
        return ProfileOut.of(user)

    @router.post(
        "/v1/account/password",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Change my password; ends my other sessions. Needs a recent authentication.",
        responses=problems(401, 403, 422, 429, 503),
    )
    async def change_password(
        body: ChangePasswordIn, request: Request, who: Principal = Depends(identity.step_up)
    ) -> Response:
        await accounts.change_password(
            who.user_id, who.session_id, body.current_password, body.new_password, request.scope
        )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/v1/account/email",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Change my email address (confirmed by a token mailed to it). Step-up.",
        responses=problems(401, 403, 422, 429, 503),
    )
    async def change_email(
        body: ChangeEmailIn, request: Request, who: Principal = Depends(identity.step_up)
    ) -> Accepted:
        await accounts.request_email_change(
            who.user_id,
            new_email=body.new_email,
            password=body.current_password,
            scope=request.scope,
        )
        return Accepted()

    @router.get(
        "/v1/account/events",
        response_model=EventsOut,
        summary="My security events, newest first.",
        responses=problems(401, 403, 422, 503),
    )
    async def events(
        who: Principal = Depends(principal),
        cursor: str | None = Query(
            default=None, max_length=MAX_CURSOR_CHARS, pattern=r"^[0-9]{1,18}$"
        ),
    ) -> EventsOut:
        before = int(cursor) if cursor is not None else None
        found, next_id = await list_events(accounts.database, who.user_id, before=before)
        return EventsOut(
            events=[
                EventOut(
                    id=e.id,
                    time=e.time,
                    type=e.type,
                    outcome=e.outcome,
                    ip=e.ip,
                    user_agent=e.user_agent,
                )
                for e in found
            ],
            next_cursor=str(next_id) if next_id is not None else None,
        )

    app.include_router(router)
    # Tried before every other route: the most frequent authenticated read.
    app.router.routes.insert(0, hot)
