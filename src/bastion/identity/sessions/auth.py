"""Authentication of requests to Bastion's own API: transport x strategy.

Transport: the ``Authorization: Bearer`` header, else the ``__Host-access`` cookie (then every
unsafe method must pass the CSRF checks). Strategy: a signed access token (offline check of
signature and claims) whose session is not revoked (:class:`RevocationCache`, at most
``revocation_bound_seconds`` stale).

Missing credentials answer 401 ``not_authenticated``; any bad token answers the one opaque 401
``invalid_token`` whatever the defect (the precise reason goes to the audit trail).

Once the user is known, the rate limits counted per user (the general ``api-user`` budget and
any other policy keyed by user) are taken here: the rate-limit middleware runs before
authentication and cannot count them. A caller over budget gets the middleware's 429
``rate_limited`` answer (``Retry-After``, ``RateLimit-Policy``, ``RateLimit``); refusals are
audited once per user per window by the limiter.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bastion.audit.context import record_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock, SystemClock
from bastion.http.errors import NotAuthenticated
from bastion.identity.sessions.revocation import RevocationCache
from bastion.identity.sessions.transport import ACCESS_COOKIE, UNSAFE_METHODS, CsrfProtection
from bastion.identity.tokens.claims import AccessTokenClaims
from bastion.identity.tokens.errors import InvalidToken, InvalidTokenReason
from bastion.identity.tokens.services import AccessTokenService
from bastion.protections.ratelimit.services import RateLimiter

__all__ = [
    "BEARER",
    "VERIFIED_TOKENS_MAX",
    "Authenticator",
    "Principal",
    "Transport",
    "VerifiedTokens",
    "bearer_scheme",
]

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
#: Verified access tokens remembered per worker (:class:`VerifiedTokens`): a few MB at most.
VERIFIED_TOKENS_MAX = 4096


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


class VerifiedTokens:
    """Access tokens that passed verification, so that a client's every request does not
    repeat the signature check and the claims parsing (the largest per-request cost).

    Only successful verifications enter; a lookup answers the claims while the token is
    unexpired and already valid (``exp``, ``nbf`` and ``iat`` against the clock with the
    leeway, the same tests as verification: a wall clock set back does not revive a token
    verification would refuse) and was verified at most ``reverify_seconds`` ago (the
    revocation bound): a key that leaves the key store stops
    accepting its tokens within that bound, as a revoked session does. Revocation itself is
    still checked on every request, by the caller. At most ``max_entries`` tokens (least
    recently used evicted); keys are SHA-256 digests of the token, so that the dictionary's
    lookup timing reveals nothing about a cached token's bytes.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        leeway_seconds: int,
        reverify_seconds: float,
        max_entries: int = VERIFIED_TOKENS_MAX,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._leeway = leeway_seconds
        self._reverify = reverify_seconds
        self._max = max_entries
        self._monotonic = monotonic  # the re-verification bound ignores wall-clock jumps
        # SystemClock's now().timestamp() is the wall clock in seconds: read it directly.
        self._timestamp: Callable[[], float] = (
            time.time if type(clock) is SystemClock else self._clock_timestamp
        )
        #: digest -> (usable from, usable until, re-verify at (monotonic), claims)
        self._entries: OrderedDict[bytes, tuple[float, float, float, AccessTokenClaims]] = (
            OrderedDict()
        )

    def _clock_timestamp(self) -> float:
        return self._clock.now().timestamp()

    def get(self, token: str) -> AccessTokenClaims | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        entry = self._entries.get(digest)
        if entry is None:
            return None
        valid_from, expires, reverify_at, claims = entry
        now = self._timestamp()
        if not valid_from <= now < expires or self._monotonic() >= reverify_at:
            del self._entries[digest]
            return None
        self._entries.move_to_end(digest)
        return claims

    def put(self, token: str, claims: AccessTokenClaims) -> None:
        if self._max <= 0:
            return
        # Verification refuses once exp <= now - leeway: usable strictly before exp + leeway;
        # and while nbf or iat > now + leeway: usable from max(nbf, iat) - leeway.
        expires = claims.expires_at.timestamp() + self._leeway
        starts = max(claims.not_before, claims.issued_at).timestamp() - self._leeway
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        reverify_at = self._monotonic() + self._reverify
        self._entries[digest] = (starts, expires, reverify_at, claims)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


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
        limiter: RateLimiter | None = None,
        emit_headers: bool = True,
    ) -> None:
        self.tokens = tokens
        self.revocations = revocations
        self.csrf = csrf
        self._audit = audit
        self._clock = clock
        self.limiter = limiter
        self.emit_headers = emit_headers
        self._verified = VerifiedTokens(
            clock,
            leeway_seconds=tokens.settings.leeway_seconds,
            reverify_seconds=revocations.bound_seconds,
        )
        #: id(claims) -> the Principal last made of them (see :meth:`_principal`).
        self._principals: dict[int, Principal] = {}

    def _credentials(self, request: Request) -> tuple[str, Transport]:
        # request.headers.get("authorization") without building the Headers object: the
        # first header of that (lower-case, as ASGI servers send them) name, as Headers reads.
        header: str | None = None
        for name, raw in request.scope["headers"]:
            if name == b"authorization":
                header = raw.decode("latin-1")
                break
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

    async def authenticate(self, request: Request, response: Response | None = None) -> Principal:
        """Raises ``NotAuthenticated``, ``InvalidToken``, ``CsrfFailed``,
        ``StorageUnavailable`` (revocations unknown: fail closed), ``RateLimited`` (the user's
        budget is spent) or ``StoreUnavailable`` (a fail-closed per-user limit undecidable).
        ``response`` receives the per-user RateLimit fields when given."""
        token, transport = self._credentials(request)
        try:
            claims = await self._verify(token)
        except InvalidToken as exc:
            record_from_scope(
                self._audit,
                request.scope,
                EventType.TOKEN_ACCESS_REJECTED,
                Outcome.FAILURE,
                reason=exc.reason.value,
                details={"transport": transport},
                clock=self._clock,
            )
            raise
        if transport != BEARER and request.method in UNSAFE_METHODS:
            self.csrf.check(request, claims.session_id)
        state = request.scope.setdefault("state", {})
        # A user already named by an outer layer was counted by the middleware: not twice.
        counted = state.get(STATE_USER_ID) is not None
        state[STATE_USER_ID] = claims.subject
        if not counted:
            await self._take_user_budget(request, response)
        return self._principal(claims, transport)

    def _principal(self, claims: AccessTokenClaims, transport: Transport) -> Principal:
        """``Principal(claims.subject, claims.session_id, transport, claims)``, the one made
        last time for these very claims (remembered with :class:`VerifiedTokens`' answers) when
        the transport is the same: a frozen dataclass costs several thousand instructions to
        build, and it is immutable and made of nothing else. The entry holds ``claims``, so
        their id cannot be reused while it lives; at most ``VERIFIED_TOKENS_MAX`` entries."""
        principals = self._principals
        known = principals.get(id(claims))
        if known is not None and known.claims is claims and known.transport == transport:
            return known
        principal = Principal(claims.subject, claims.session_id, transport, claims)
        if len(principals) >= VERIFIED_TOKENS_MAX:
            principals.clear()
        principals[id(claims)] = principal
        return principal

    async def _take_user_budget(self, request: Request, response: Response | None) -> None:
        if self.limiter is None:
            return
        scope = request.scope
        limiter = self.limiter
        applied = limiter.per_user(scope["method"], scope["path"])
        if not applied:
            return
        # The common case (one policy, the in-process store, allowed) without a verdict: the
        # same unit taken and the same two headers as Verdict.headers() (their names are
        # lower-case bytes already, as MutableHeaders.append would store them).
        admitted = limiter.admit(scope, applied)
        if admitted is not None:
            if response is not None and self.emit_headers:
                response.raw_headers.extend(admitted)
            return
        verdict = await limiter.check(scope, applied)
        if not verdict.allowed:
            raise verdict.error()
        if response is not None and self.emit_headers:
            for name, value in verdict.headers():
                response.headers.append(name.decode("latin-1"), value.decode("latin-1"))

    async def _verify(self, token: str) -> AccessTokenClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = await self.tokens.verify(token)
            self._verified.put(token, claims)
        revoked = self.revocations.revoked_now(claims.session_id)
        if revoked is None:  # the set is at its bound: wait for the refresh
            revoked = await self.revocations.is_revoked(claims.session_id)
        if revoked:
            raise InvalidToken(InvalidTokenReason.SESSION_REVOKED)
        return claims

    def dependency(self) -> Callable[..., Awaitable[Principal]]:
        """A FastAPI dependency returning the :class:`Principal` (documented as bearer)."""

        async def current_principal(
            request: Request,
            response: Response,
            _: HTTPAuthorizationCredentials | None = Security(bearer_scheme),
        ) -> Principal:
            return await self.authenticate(request, response)

        return current_principal
