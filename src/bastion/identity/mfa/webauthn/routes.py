"""HTTP routes of passkeys.

``/v1/account/mfa/webauthn/...``: my passkeys (register: begin and finish; list, rename,
delete). Changing factors is sensitive: every unsafe method there needs a recent authentication
(step-up, :mod:`bastion.identity.mfa.stepup`).
``/v1/sessions/webauthn/...``: a passwordless login with a discoverable passkey.
``/v1/sessions/mfa/webauthn/...``: a passkey as the second factor of a password login (the
challenge ``POST /v1/sessions`` answered 202 with).
``/v1/sessions/current/step-up/webauthn/...``: re-authenticate this session with a passkey.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request, status
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import Response

from bastion.crypto import hash_token
from bastion.http.errors import NotFound
from bastion.http.responses import problems
from bastion.identity.accounts.guard import client_ip_of
from bastion.identity.mfa.errors import NoFactor
from bastion.identity.mfa.routes import StepUpOut, step_up_answer
from bastion.identity.mfa.webauthn.schemas import (
    CeremonyOut,
    LoginFinishIn,
    PasskeyOut,
    PasskeysOut,
    RegistrationFinishIn,
    RenameIn,
    SecondFactorBeginIn,
    SecondFactorFinishIn,
    StepUpFinishIn,
    as_json,
)
from bastion.identity.mfa.webauthn.services import Ceremony, WebAuthnService
from bastion.identity.services import IdentityServices
from bastion.identity.sessions.auth import Principal
from bastion.identity.sessions.routes import COOKIE, TokensOut, token_answer

__all__ = ["ACCOUNT_PREFIX", "include"]

ACCOUNT_PREFIX = "/v1/account/mfa/webauthn"
_PASSKEY_ID = Path(min_length=1, max_length=64)


def _ceremony(ceremony: Ceremony, webauthn: WebAuthnService) -> CeremonyOut:
    return CeremonyOut(
        ceremony=ceremony.handle,
        expires_in=int(webauthn.challenges.ttl.total_seconds()),
        public_key=ceremony.options,
    )


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def include(app: FastAPI, identity: IdentityServices, webauthn: WebAuthnService) -> None:
    _include_account(app, identity, webauthn)
    _include_sessions(app, identity, webauthn)


def _include_account(app: FastAPI, identity: IdentityServices, webauthn: WebAuthnService) -> None:
    principal = identity.principal
    step_up = identity.step_up
    router = APIRouter(tags=["mfa"])

    @router.get(
        f"{ACCOUNT_PREFIX}/credentials",
        response_model=PasskeysOut,
        summary="My passkeys.",
        responses=problems(401, 403, 429, 503),
    )
    async def list_passkeys(who: Principal = Depends(principal)) -> PasskeysOut:
        return PasskeysOut(passkeys=[PasskeyOut.of(p) for p in await webauthn.list(who.user_id)])

    @router.post(
        f"{ACCOUNT_PREFIX}/registrations",
        response_model=CeremonyOut,
        summary="Start registering a passkey (step-up): options for credentials.create().",
        responses=problems(401, 403, 409, 429, 503),
    )
    async def begin_registration(who: Principal = Depends(step_up)) -> CeremonyOut:
        user = await identity.accounts.get(who.user_id)
        return _ceremony(await webauthn.begin_registration(user), webauthn)

    @router.post(
        f"{ACCOUNT_PREFIX}/registrations/finish",
        response_model=PasskeyOut,
        status_code=status.HTTP_201_CREATED,
        summary="Finish registering a passkey (step-up) with the credential create() returned.",
        responses=problems(400, 401, 403, 409, 422, 429, 503),
    )
    async def finish_registration(
        body: RegistrationFinishIn, request: Request, who: Principal = Depends(step_up)
    ) -> PasskeyOut:
        passkey = await webauthn.finish_registration(
            who.user_id,
            body.ceremony,
            as_json(body.credential),
            name=body.name,
            scope=request.scope,
        )
        identity.enrollment.forget(who.user_id)  # the policy sees the new factor at once
        return PasskeyOut.of(passkey)

    @router.patch(
        f"{ACCOUNT_PREFIX}/credentials/{{passkey_id}}",
        response_model=PasskeyOut,
        summary="Rename one of my passkeys (step-up).",
        responses=problems(401, 403, 404, 422, 429, 503),
    )
    async def rename_passkey(
        body: RenameIn,
        request: Request,
        passkey_id: str = _PASSKEY_ID,
        who: Principal = Depends(step_up),
    ) -> PasskeyOut:
        try:
            passkey = await webauthn.rename(who.user_id, passkey_id, body.name, scope=request.scope)
        except LookupError:
            raise NotFound from None  # someone else's passkey, or none: the same 404
        return PasskeyOut.of(passkey)

    @router.delete(
        f"{ACCOUNT_PREFIX}/credentials/{{passkey_id}}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Delete one of my passkeys (step-up).",
        responses=problems(401, 403, 404, 422, 429, 503),
    )
    async def delete_passkey(
        request: Request, passkey_id: str = _PASSKEY_ID, who: Principal = Depends(step_up)
    ) -> Response:
        try:
            await webauthn.delete(who.user_id, passkey_id, scope=request.scope)
        except LookupError:
            raise NotFound from None
        identity.enrollment.forget(who.user_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    app.include_router(router)


def _include_sessions(app: FastAPI, identity: IdentityServices, webauthn: WebAuthnService) -> None:
    mfa = identity.mfa
    router = APIRouter(tags=["sessions"])

    @router.post(
        "/v1/sessions/webauthn/begin",
        response_model=CeremonyOut,
        summary="Start a passwordless login: options for navigator.credentials.get().",
        responses=problems(429, 503),
    )
    async def begin_login() -> CeremonyOut:
        return _ceremony(await webauthn.begin_login(), webauthn)

    @router.post(
        "/v1/sessions/webauthn/finish",
        response_model=TokensOut,
        response_model_exclude_none=True,
        summary="Log in with a passkey (no password): amr hwk|swk + mfa, acr aal2.",
        responses=problems(400, 401, 403, 422, 429, 503),
    )
    async def finish_login(body: LoginFinishIn, request: Request, response: Response) -> TokensOut:
        if body.transport == COOKIE:
            identity.csrf.check_origin(request)  # login CSRF: a foreign site logging a victim in
        scope = request.scope
        verified = await webauthn.finish_login(body.ceremony, as_json(body.credential), scope=scope)
        amr, acr = verified.first_factor()
        tokens = await identity.sessions.create(
            verified.user_id,
            amr=amr,
            acr=acr,
            transport=body.transport,
            ip=client_ip_of(scope),
            user_agent=_header(scope, b"user-agent"),
        )
        webauthn.record_login(
            scope, verified, session_id=tokens.session_id, transport=body.transport
        )
        return token_answer(identity, tokens, body.transport, response)

    @router.post(
        "/v1/sessions/mfa/webauthn/begin",
        response_model=CeremonyOut,
        summary="Start proving a passkey as the second factor of a login challenge.",
        responses=problems(401, 409, 422, 429, 503),
    )
    async def begin_second_factor(body: SecondFactorBeginIn, request: Request) -> CeremonyOut:
        pending = await mfa.peek_challenge(body.challenge_token, request.scope)
        if not await webauthn.has_passkeys(pending.user_id):
            raise NoFactor
        ceremony = await webauthn.begin_second_factor(
            pending.user_id, binding=hash_token(body.challenge_token)
        )
        return _ceremony(ceremony, webauthn)

    @router.post(
        "/v1/sessions/mfa/webauthn/finish",
        response_model=TokensOut,
        response_model_exclude_none=True,
        summary="Complete a login challenge with a passkey: amr pwd + hwk|swk + mfa, acr aal2.",
        responses=problems(400, 401, 403, 422, 429, 503),
    )
    async def finish_second_factor(
        body: SecondFactorFinishIn, request: Request, response: Response
    ) -> TokensOut:
        scope = request.scope
        pending = await mfa.peek_challenge(body.challenge_token, scope)
        if pending.transport == COOKIE:
            identity.csrf.check_origin(request)  # login CSRF, as for the password step
        credential = as_json(body.credential)
        binding = hash_token(body.challenge_token)

        async def verify(connection: AsyncConnection, user_id: str) -> None:
            await webauthn.verify_second_factor(
                connection, user_id, body.ceremony, credential, binding=binding, scope=scope
            )

        method = await webauthn.method_for(credential)
        done = await mfa.complete_challenge(
            body.challenge_token, method.value, verifier=verify, scope=scope, pending=pending
        )
        return token_answer(identity, done.tokens, done.transport, response)

    @router.post(
        "/v1/sessions/current/step-up/webauthn/begin",
        response_model=CeremonyOut,
        summary="Start re-authenticating this session with one of my passkeys.",
        responses=problems(401, 403, 409, 429, 503),
    )
    async def begin_step_up(who: Principal = Depends(identity.principal)) -> CeremonyOut:
        if not await webauthn.has_passkeys(who.user_id):
            raise NoFactor
        ceremony = await webauthn.begin_second_factor(
            who.user_id, binding=_step_up_binding(who.session_id)
        )
        return _ceremony(ceremony, webauthn)

    @router.post(
        "/v1/sessions/current/step-up/webauthn/finish",
        response_model=StepUpOut,
        response_model_exclude_none=True,
        summary="Re-authenticate this session with a passkey (for sensitive operations).",
        responses=problems(400, 401, 403, 422, 429, 503),
    )
    async def finish_step_up(
        body: StepUpFinishIn,
        request: Request,
        response: Response,
        who: Principal = Depends(identity.principal),
    ) -> StepUpOut:
        scope = request.scope
        credential = as_json(body.credential)
        binding = _step_up_binding(who.session_id)

        async def verify(connection: AsyncConnection, user_id: str) -> None:
            await webauthn.verify_second_factor(
                connection, user_id, body.ceremony, credential, binding=binding, scope=scope
            )

        user = await identity.accounts.get(who.user_id)
        method = await webauthn.method_for(credential)
        state = await mfa.verify_for_session(
            user, who.session_id, method.value, verifier=verify, scope=scope
        )
        return await step_up_answer(identity, who, state, response)

    app.include_router(router)


def _step_up_binding(session_id: str) -> str:
    """A step-up ceremony belongs to the session that began it."""
    return hash_token(f"step-up:{session_id}")
