"""Authentication of requests to Bastion's own API: transport x strategy.

Transport: the ``Authorization: Bearer`` header, else the ``__Host-access`` cookie (then every
unsafe method must pass the CSRF checks). Strategy: a signed access token (offline check of
signature and claims) whose session is not revoked (:class:`RevocationCache`, at most
``revocation_bound_seconds`` stale).

Missing credentials answer 401 ``not_authenticated``; any bad token answers the one opaque 401
``invalid_token`` whatever the defect (the precise reason goes to the audit trail).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bastion.audit.context import event_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.http.errors import NotAuthenticated
from bastion.identity.sessions.revocation import RevocationCache
from bastion.identity.sessions.transport import ACCESS_COOKIE, UNSAFE_METHODS, CsrfProtection
from bastion.identity.tokens.claims import AccessTokenClaims
from bastion.identity.tokens.errors import InvalidToken, InvalidTokenReason
from bastion.identity.tokens.services import AccessTokenService

__all__ = ["BEARER", "Authenticator", "Principal", "Transport", "bearer_scheme"]

#: Shown in the OpenAPI document; the header is parsed by :class:`Authenticator` itself.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token from POST /v1/sessions (or the __Host-access cookie).",
)
BEARER = "bearer"
Transport = str
#: ``scope["state"]`` key read by the per-user rate limits.
STATE_USER_ID = "user_id"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    session_id: str
    transport: Transport
    claims: AccessTokenClaims

    @property
    def subject(self) -> str:
        return f"user:{self.user_id}"


def _not_authenticated() -> NotAuthenticated:
    error = NotAuthenticated()
    # RFC 6750 §3: a request without credentials gets the challenge without an error code.
    error.headers = {"WWW-Authenticate": 'Bearer realm="bastion"'}  # type: ignore[attr-defined]
    return error


class Authenticator:
    """Turns a request into a :class:`Principal` or raises."""

    def __init__(
        self,
        tokens: AccessTokenService,
        revocations: RevocationCache,
        csrf: CsrfProtection,
        *,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self.tokens = tokens
        self.revocations = revocations
        self.csrf = csrf
        self._audit = audit
        self._clock = clock

    def _credentials(self, request: Request) -> tuple[str, Transport]:
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            token = value.strip()
            if scheme.lower() != "bearer" or not token:
                raise _not_authenticated()
            return token, BEARER
        cookie = request.cookies.get(ACCESS_COOKIE)
        if not cookie:
            raise _not_authenticated()
        return cookie, "cookie"

    async def authenticate(self, request: Request) -> Principal:
        """Raises ``NotAuthenticated``, ``InvalidToken``, ``CsrfFailed`` or
        ``StorageUnavailable`` (revocations unknown: fail closed)."""
        token, transport = self._credentials(request)
        try:
            claims = await self._verify(token)
        except InvalidToken as exc:
            self._audit.record(
                event_from_scope(
                    request.scope,
                    EventType.TOKEN_ACCESS_REJECTED,
                    Outcome.FAILURE,
                    reason=exc.reason.value,
                    details={"transport": transport},
                    clock=self._clock,
                )
            )
            raise
        if transport != BEARER and request.method in UNSAFE_METHODS:
            self.csrf.check(request, claims.session_id)
        request.scope.setdefault("state", {})[STATE_USER_ID] = claims.subject
        return Principal(claims.subject, claims.session_id, transport, claims)

    async def _verify(self, token: str) -> AccessTokenClaims:
        claims = await self.tokens.verify(token)
        if await self.revocations.is_revoked(claims.session_id):
            raise InvalidToken(InvalidTokenReason.SESSION_REVOKED)
        return claims

    def dependency(self) -> Callable[..., Awaitable[Principal]]:
        """A FastAPI dependency returning the :class:`Principal` (documented as bearer)."""

        async def current_principal(
            request: Request,
            _: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
        ) -> Principal:
            return await self.authenticate(request)

        return current_principal
