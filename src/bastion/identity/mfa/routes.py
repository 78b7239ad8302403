"""HTTP routes of multi-factor authentication.

``/v1/account/mfa/...``: my factors (status, TOTP enrollment and removal, recovery codes).
``/v1/sessions/mfa/complete``: finish a login that answered 202 with a challenge.
``/v1/sessions/current/step-up``: re-authenticate the current session for sensitive operations.
``/v1/admin/users/{id}/mfa/reset``: an administrator removes a user's factors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from bastion.audit.events import EventType
from bastion.authz.builtin.enforcement import on_system, system_authorizer
from bastion.authz.builtin.model import Permission
from bastion.http.responses import problems
from bastion.identity.fields import OpaqueToken, Password
from bastion.identity.mfa.errors import StepUpRequired
from bastion.identity.mfa.services import Method
from bastion.identity.mfa.session_auth import SessionAuth
from bastion.identity.mfa.stepup import STEP_UP_ENDPOINT
from bastion.identity.services import IdentityServices
from bastion.identity.sessions.auth import Principal
from bastion.identity.sessions.routes import COOKIE, TokensOut, token_answer
from bastion.identity.sessions.transport import ACCESS_COOKIE
from bastion.identity.tokens.claims import AuthMethod

__all__ = ["include"]

#: A TOTP code (6 digits, spaces tolerated) or a recovery code (20 characters, hyphens).
Code = Annotated[str, Field(min_length=1, max_length=64)]
_ADMIN_USER_ID = Path(min_length=1, max_length=64)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeIn(_Strict):
    code: Code


class CompleteIn(_Strict):
    challenge_token: OpaqueToken
    method: Literal["otp", "recovery"]
    code: Code


class StepUpIn(_Strict):
    """A second factor when the account has one; the password otherwise (both are accepted)."""

    password: Password | None = None
    method: Literal["otp", "recovery"] | None = None
    code: Code | None = None


class MfaStatusOut(BaseModel):
    totp: Literal["none", "pending", "active"]
    recovery_codes_remaining: int
    methods: list[str]
    required: bool


class TotpEnrollmentOut(BaseModel):
    """Shown once. Activate with the first code: POST /v1/account/mfa/totp/activate."""

    secret: str
    otpauth_uri: str
    qr_svg: str


class ActivatedOut(BaseModel):
    status: Literal["active"] = "active"
    #: Shown once, only when the account had no recovery codes yet.
    recovery_codes: list[str] | None


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


class StepUpOut(BaseModel):
    """The session's authentication now; a fresh access token carrying it (bearer), or the
    access cookie replaced (cookie)."""

    acr: str
    amr: list[str]
    auth_time: datetime
    access_token: str | None = None
    expires_in: int


def include(app: FastAPI, identity: IdentityServices) -> None:
    mfa = identity.mfa
    accounts = identity.accounts
    principal = identity.principal
    step_up = identity.step_up
    account = APIRouter(prefix="/v1/account/mfa", tags=["mfa"])

    @account.get(
        "",
        response_model=MfaStatusOut,
        summary="My second factors.",
        responses=problems(401, 403, 429, 503),
    )
    async def mfa_status(who: Principal = Depends(principal)) -> MfaStatusOut:
        found = await mfa.status(who.user_id)
        user = await accounts.get(who.user_id)
        return MfaStatusOut(
            totp=found.totp.value,
            recovery_codes_remaining=found.recovery_codes_remaining,
            methods=found.methods,
            required=mfa.requires_factor(user),
        )

    @account.post(
        "/totp",
        status_code=status.HTTP_201_CREATED,
        response_model=TotpEnrollmentOut,
        summary="Start enrolling an authenticator app (step-up). Secret, URI and QR shown once.",
        responses=problems(401, 403, 409, 429, 503),
    )
    async def enroll_totp(request: Request, who: Principal = Depends(step_up)) -> TotpEnrollmentOut:
        user = await accounts.get(who.user_id)
        enrollment = await mfa.enroll_totp(user, request.scope)
        return TotpEnrollmentOut(
            secret=enrollment.secret, otpauth_uri=enrollment.uri, qr_svg=enrollment.qr_svg
        )

    @account.post(
        "/totp/activate",
        response_model=ActivatedOut,
        summary="Activate the pending authenticator app with its first code.",
        responses=problems(401, 403, 409, 422, 429, 503),
    )
    async def activate_totp(
        body: CodeIn, request: Request, who: Principal = Depends(principal)
    ) -> ActivatedOut:
        user = await accounts.get(who.user_id)
        codes = await mfa.activate_totp(user, who.session_id, body.code, request.scope)
        identity.enrollment.forget(who.user_id)
        return ActivatedOut(recovery_codes=codes)

    @account.delete(
        "/totp",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Remove my authenticator app (step-up).",
        responses=problems(401, 403, 409, 429, 503),
    )
    async def remove_totp(request: Request, who: Principal = Depends(step_up)) -> Response:
        await mfa.remove_totp(await accounts.get(who.user_id), request.scope)
        identity.enrollment.forget(who.user_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @account.post(
        "/recovery-codes",
        response_model=RecoveryCodesOut,
        summary="Generate new recovery codes (step-up); the old ones stop working.",
        responses=problems(401, 403, 409, 429, 503),
    )
    async def regenerate(request: Request, who: Principal = Depends(step_up)) -> RecoveryCodesOut:
        user = await accounts.get(who.user_id)
        return RecoveryCodesOut(
            recovery_codes=await mfa.regenerate_recovery_codes(user, request.scope)
        )

    app.include_router(account)
    _include_sessions(app, identity)
    _include_admin(app, identity)


def _include_sessions(app: FastAPI, identity: IdentityServices) -> None:
    mfa = identity.mfa
    accounts = identity.accounts
    principal = identity.principal
    sessions = APIRouter(tags=["sessions"])

    @sessions.post(
        "/v1/sessions/mfa/complete",
        response_model=TokensOut,
        response_model_exclude_none=True,
        summary="Complete a login with a second factor (the challenge of POST /v1/sessions).",
        responses=problems(401, 403, 422, 429, 503),
    )
    async def complete(body: CompleteIn, request: Request, response: Response) -> TokensOut:
        pending = await mfa.peek_challenge(body.challenge_token, request.scope)
        if pending.transport == COOKIE:
            identity.csrf.check_origin(request)  # login CSRF, as for the password step
        done = await mfa.complete_challenge(
            body.challenge_token, body.method, code=body.code, scope=request.scope, pending=pending
        )
        return token_answer(identity, done.tokens, done.transport, response)

    @sessions.post(
        STEP_UP_ENDPOINT,
        response_model=StepUpOut,
        response_model_exclude_none=True,
        summary="Re-authenticate this session for sensitive operations (factor or password).",
        responses=problems(401, 403, 422, 429, 503),
    )
    async def step_up_now(
        body: StepUpIn, request: Request, response: Response, who: Principal = Depends(principal)
    ) -> StepUpOut:
        user = await accounts.get(who.user_id)
        methods = await mfa.methods_of(user.id)
        if body.method is not None and body.code is not None:
            state = await mfa.verify_for_session(
                user, who.session_id, Method(body.method), code=body.code, scope=request.scope
            )
        elif body.password is not None and not methods:
            await accounts.verify_current_password(
                user, body.password, request.scope, event=EventType.IDENTITY_LOGIN_FAILED
            )
            state = await mfa.mark_authenticated(
                who.session_id, user.id, [AuthMethod.PASSWORD], scope=request.scope
            )
        else:
            raise StepUpRequired(
                acr="aal2" if methods else "aal1",
                max_age=mfa.settings.step_up_max_age_seconds,
                methods=methods or ["password"],
                endpoint=STEP_UP_ENDPOINT,
                reason="no_credential",
            )
        return await step_up_answer(identity, who, state, response)

    app.include_router(sessions)


async def step_up_answer(
    identity: IdentityServices, who: Principal, state: SessionAuth, response: Response
) -> StepUpOut:
    """What a successful step-up answers (password, factor or passkey alike): a fresh access
    token carrying the session's new ``amr``/``acr`` (bearer), or the access cookie replaced
    (cookie)."""
    await identity.signing.ensure()
    access = await identity.access_tokens.issue(
        subject=who.user_id,
        session_id=who.session_id,
        amr=[AuthMethod(m) for m in state.amr],
        acr=state.acr,
    )
    ttl = identity.access_tokens.settings.ttl_seconds
    if who.transport == COOKIE:
        response.set_cookie(
            ACCESS_COOKIE,
            access,
            max_age=ttl,
            path="/",
            secure=identity.cookies.secure,
            httponly=True,
            samesite="lax",
        )
    return StepUpOut(
        acr=state.acr.value,
        amr=list(state.amr),
        auth_time=state.auth_time,
        access_token=access if who.transport != COOKIE else None,
        expires_in=ttl,
    )


def _include_admin(app: FastAPI, identity: IdentityServices) -> None:
    principal = identity.principal
    admin = APIRouter(prefix="/v1/admin/users", tags=["admin"])
    # Decided by the authorization engine through the SDK: administrators and support.
    authz = system_authorizer(identity.admin.authorizer, principal)

    @admin.post(
        "/{user_id}/mfa/reset",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary="Remove every second factor of a user, end their sessions, notify them.",
        dependencies=[
            Depends(on_system(authz, Permission.RESET_MFA)),
            Depends(identity.step_up),
        ],
        responses=problems(401, 403, 404, 422, 429, 503),
    )
    async def reset(
        request: Request, user_id: str = _ADMIN_USER_ID, who: Principal = Depends(principal)
    ) -> Response:
        user = await identity.accounts.get(user_id)
        await identity.mfa.reset(user, actor=who.subject, scope=request.scope)
        identity.enrollment.forget(user.id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    app.include_router(admin)
