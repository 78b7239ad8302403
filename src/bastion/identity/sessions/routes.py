"""HTTP routes of sessions: login, refresh, list, logout (this one, one, all)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pydantic_core import to_json
from starlette.responses import Response

from bastion.http.errors import NotFound
from bastion.http.responses import problems
from bastion.identity._direct import DirectRoute, Serialized, api_route
from bastion.identity.fields import Email, OpaqueToken, Password
from bastion.identity.mfa.errors import SecondFactorRequired
from bastion.identity.services import IdentityServices
from bastion.identity.sessions.auth import Principal
from bastion.identity.sessions.services import IssuedTokens, RevokeReason
from bastion.identity.sessions.transport import (
    REFRESH_COOKIE,
    clear_session_cookies,
    set_session_cookies,
)
from bastion.identity.tokens.errors import InvalidToken, InvalidTokenReason

__all__ = [
    "MfaChallengeOut",
    "TokensOut",
    "bearer_json",
    "include",
    "token_answer",
]

COOKIE = "cookie"


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: Password
    transport: Literal["bearer", "cookie"] = "bearer"


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: OpaqueToken | None = None


class TokensOut(BaseModel):
    """Bearer: both tokens. Cookie: tokens in cookies, ``csrf_token`` to echo in X-CSRF-Token."""

    access_token: str | None = None
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - RFC 6750 token type, not a secret
    expires_in: int
    refresh_token: str | None = None
    session_id: str
    csrf_token: str | None = None


class MfaChallengeOut(BaseModel):
    """The password was right; complete the login with a second factor at
    ``POST /v1/sessions/mfa/complete`` (the challenge is single use and short-lived)."""

    mfa_required: Literal[True] = True
    challenge_token: str
    expires_in: int
    methods: list[str]


#: The bearer answer of a login or refresh as ``TokensOut`` serializes it with ``exclude_none``:
#: compact JSON, the fields in declaration order.
_BEARER_JSON = (
    b'{"access_token":%b,"token_type":"Bearer","expires_in":%d,"refresh_token":%b,"session_id":%b}'
)


def bearer_json(tokens: IssuedTokens) -> Serialized | None:
    """The bytes the FastAPI route sends for ``token_answer(...)`` with the bearer transport,
    without building the model: each string as pydantic's serializer writes it
    (``pydantic_core.to_json``, the model's own string encoding). None when a value is not of
    the plain type the model keeps as it is (the model decides then)."""
    access, refresh, session = tokens.access_token, tokens.refresh_token, tokens.session_id
    expires = tokens.expires_in
    if (
        type(access) is not str
        or type(refresh) is not str
        or type(session) is not str
        or type(expires) is not int
    ):
        return None
    values = (to_json(access), expires, to_json(refresh), to_json(session))
    return Serialized(_BEARER_JSON % values)


def token_answer(
    identity: IdentityServices, tokens: IssuedTokens, transport: str, response: Response
) -> TokensOut:
    """The answer of a login or refresh: tokens in the body (bearer) or in cookies."""
    if transport != COOKIE:
        return TokensOut(
            access_token=tokens.access_token,
            expires_in=tokens.expires_in,
            refresh_token=tokens.refresh_token,
            session_id=tokens.session_id,
        )
    csrf_token = identity.csrf.token_for(tokens.session_id)
    set_session_cookies(
        response,
        identity.cookies,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        csrf_token=csrf_token,
    )
    return TokensOut(
        expires_in=tokens.expires_in, session_id=tokens.session_id, csrf_token=csrf_token
    )


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    amr: list[str]
    current: bool


class SessionsOut(BaseModel):
    sessions: list[SessionOut]


class SessionStatus(BaseModel):
    active: Literal[True] = True
    session_id: str


def _password_login(
    identity: IdentityServices, *, serialized: bool = False
) -> Callable[[Request, Response, LoginIn], Awaitable[TokensOut | Serialized | Response]]:
    """The login endpoint's work, shared by the FastAPI route and (``serialized``: a bearer
    answer as its JSON bytes) its direct twin."""

    async def password_login(
        request: Request, response: Response, body: LoginIn
    ) -> TokensOut | Serialized | Response:
        if body.transport == COOKIE:
            identity.csrf.check_origin(request)  # login CSRF: a foreign site logging a victim in
        try:
            result = await identity.login.login(
                body.email, body.password, transport=body.transport, scope=request.scope
            )
        except SecondFactorRequired as required:
            challenge = MfaChallengeOut(
                challenge_token=required.challenge_token,
                expires_in=required.expires_in,
                methods=required.methods,
            )
            return JSONResponse(challenge.model_dump(), status_code=status.HTTP_202_ACCEPTED)
        if serialized and body.transport != COOKIE:
            prepared = bearer_json(result.tokens)
            if prepared is not None:
                return prepared
        return token_answer(identity, result.tokens, body.transport, response)

    return password_login


def include(
    app: FastAPI,
    identity: IdentityServices,
    principal: Callable[..., Awaitable[Principal]],
) -> None:
    sessions = identity.sessions
    csrf = identity.csrf
    cookies = identity.cookies
    router = APIRouter(tags=["sessions"])

    def answer(tokens: IssuedTokens, transport: str, response: Response) -> TokensOut:
        return token_answer(identity, tokens, transport, response)

    @router.post(
        "/v1/sessions",
        response_model=TokensOut,
        response_model_exclude_none=True,
        summary="Log in with email and password (202: a second factor completes the login).",
        responses={
            202: {"model": MfaChallengeOut, "description": "Complete with a second factor"},
            **problems(401, 403, 422, 429, 503),
        },
    )
    async def login(body: LoginIn, request: Request, response: Response) -> Any:
        return await password_login(request, response, body)

    password_login = _password_login(identity)
    hot_login = DirectRoute(
        api_route(router, "/v1/sessions", "POST"), _password_login(identity, serialized=True)
    )

    @router.post(
        "/v1/sessions/refresh",
        response_model=TokensOut,
        response_model_exclude_none=True,
        summary="Rotate a refresh token (JSON body, or the refresh cookie).",
        responses=problems(401, 403, 422, 429, 503),
    )
    async def refresh(
        request: Request, response: Response, body: RefreshIn | None = Body(default=None)
    ) -> TokensOut:
        return await rotate(request, response, body)

    async def rotate(request: Request, response: Response, body: RefreshIn | None) -> TokensOut:
        """The refresh endpoint's work, shared by the FastAPI route and its direct twin."""
        token = body.refresh_token if body is not None else None
        if token is not None:
            return answer(await sessions.refresh(token, scope=request.scope), "bearer", response)
        cookie = request.cookies.get(REFRESH_COOKIE)
        if not cookie:
            raise InvalidToken(InvalidTokenReason.MALFORMED)
        # A cookie travels by itself: the request must prove it comes from our own page.
        csrf.check_origin(request)
        csrf.check_token(request, None)
        session_id = await sessions.session_of_refresh_token(cookie)
        if session_id is not None:
            csrf.check_session(request.headers.get("x-csrf-token") or "", session_id)
        return answer(await sessions.refresh(cookie, scope=request.scope), COOKIE, response)

    async def rotate_direct(
        request: Request, response: Response, body: RefreshIn | None
    ) -> TokensOut | Serialized:
        """:func:`rotate`, a bearer answer as its JSON bytes."""
        token = body.refresh_token if body is not None else None
        if token is not None:
            tokens = await sessions.refresh(token, scope=request.scope)
            return bearer_json(tokens) or answer(tokens, "bearer", response)
        return await rotate(request, response, body)

    hot = DirectRoute(api_route(router, "/v1/sessions/refresh", "POST"), rotate_direct)

    @router.get(
        "/v1/sessions",
        response_model=SessionsOut,
        summary="My active sessions.",
        responses=problems(401, 403, 503),
    )
    async def list_sessions(who: Principal = Depends(principal)) -> SessionsOut:
        found = await sessions.list_active(who.user_id)
        return SessionsOut(
            sessions=[
                SessionOut(
                    id=s.id,
                    created_at=s.created_at,
                    last_seen_at=s.last_seen_at,
                    ip=s.ip,
                    user_agent=s.user_agent,
                    amr=list(s.amr),
                    current=s.id == who.session_id,
                )
                for s in found
            ]
        )

    @router.get(
        "/v1/sessions/current/status",
        response_model=SessionStatus,
        summary="Whether my session is live now (read from the database, not a cache).",
        responses=problems(401, 403, 503),
    )
    async def session_status(who: Principal = Depends(principal)) -> SessionStatus:
        if not await sessions.is_live(who.session_id):
            raise InvalidToken(InvalidTokenReason.SESSION_REVOKED)
        return SessionStatus(session_id=who.session_id)

    def ended(who: Principal) -> Response:
        response = Response(status_code=status.HTTP_204_NO_CONTENT)
        if who.transport == COOKIE:
            clear_session_cookies(response, cookies)
        return response

    @router.delete(
        "/v1/sessions/current",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Log out (this session).",
        responses=problems(401, 403, 503),
    )
    async def logout(request: Request, who: Principal = Depends(principal)) -> Response:
        await sessions.revoke(
            who.session_id, user_id=who.user_id, reason=RevokeReason.LOGOUT, scope=request.scope
        )
        return ended(who)

    @router.delete(
        "/v1/sessions/{session_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="End one of my sessions.",
        responses=problems(401, 403, 404, 422, 503),
    )
    async def revoke_one(
        request: Request,
        session_id: str = Path(min_length=1, max_length=64),
        who: Principal = Depends(principal),
    ) -> Response:
        # Someone else's session, or none: the same 404 (ids are not confirmed to strangers).
        if not await sessions.revoke(
            session_id, user_id=who.user_id, reason=RevokeReason.LOGOUT, scope=request.scope
        ):
            raise NotFound
        if session_id == who.session_id:
            return ended(who)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.delete(
        "/v1/sessions",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Log out everywhere (every session, this one included).",
        responses=problems(401, 403, 503),
    )
    async def logout_all(request: Request, who: Principal = Depends(principal)) -> Response:
        async with sessions.database.engine.begin() as connection:
            revoked = await sessions.revoke_all(
                connection, who.user_id, reason=RevokeReason.LOGOUT_ALL
            )
        sessions.after_revoke_all(revoked, who.user_id, RevokeReason.LOGOUT_ALL, request.scope)
        return ended(who)

    app.include_router(router)
    # Tried before every other route: every client refreshes every few minutes; every login
    # (and every password guess) pays for its route lookup beside its hash.
    app.router.routes[0:0] = [hot_login, hot]
