"""Authenticate requests to another service with Bastion's access tokens (resource-server side).

::

    from bastion.sdk import BastionAuth, AuthenticatedUser

    auth = BastionAuth(
        issuer="https://id.example.com",            # BASTION_ACCESS_TOKENS__ISSUER
        audience="orders-api",                      # the aud this service accepts
        jwks_url="https://id.example.com/.well-known/jwks.json",
        status_url="https://id.example.com/v1/sessions/current/status",  # optional
    )

    @app.get("/orders")
    async def orders(user: AuthenticatedUser = Depends(auth)) -> ...:       # offline check
        ...

    @app.post("/payouts")
    async def payout(user: AuthenticatedUser = Depends(auth.live)) -> ...:  # + live session
        ...

Offline verification: the token's signature against Bastion's JWK Set, with the issuer,
audience and algorithm pinned here (never taken from the token), ``exp``/``nbf``/``iat`` with a
small leeway, and every claim required: the same checks as Bastion's own
(:func:`bastion.identity.tokens.access.verify_access_token_with`). Every failure is one opaque
401 ``invalid_token``. A token seen before skips only its signature check while the key that
verified it is still the JWK Set's (:mod:`bastion.identity.tokens.sigcache`;
``signature_cache=False`` switches that off).

The JWK Set is fetched over HTTPS, cached for ``cache_seconds``, and refetched early when a
token names an unknown kid (a key rotation), at most once per ``refetch_interval_seconds``: a
flood of tokens with invented kids cannot turn this service into a request amplifier against
Bastion. A revoked session's access tokens pass offline checks until they expire (5 minutes
by default); a route that needs revocation at once uses ``BastionAuth.live``, which asks
Bastion whether the session is still live. When Bastion cannot be reached, requests are refused
(503 ``jwks_unavailable``), never let through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bastion.clock import Clock, SystemClock
from bastion.http.errors import NotAuthenticated
from bastion.identity.tokens.access import verify_access_token_with
from bastion.identity.tokens.claims import AccessTokenClaims
from bastion.identity.tokens.errors import (
    InvalidToken,
    InvalidTokenReason,
    KeySetUnavailable,
    SigningKeyError,
)
from bastion.identity.tokens.keys import PublicKey, SigningAlgorithm
from bastion.identity.tokens.settings import AccessTokenSettings
from bastion.identity.tokens.sigcache import DEFAULT_ENTRIES, SignatureCache

if TYPE_CHECKING:  # imported where a client is made: the server itself never makes one
    import httpx

__all__ = ["AuthenticatedUser", "BastionAuth", "JwksCache"]

#: A JWK Set of a few keys is a few hundred bytes; refuse to buffer more than this.
MAX_JWKS_BYTES = 64 * 1024
DEFAULT_CACHE_SECONDS = 300.0
DEFAULT_REFETCH_INTERVAL_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 5.0

_bearer = HTTPBearer(auto_error=False, scheme_name="bastion", description="A Bastion access token.")


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    """Who called: the verified token's subject, session and how they authenticated."""

    subject: str
    session_id: str
    amr: tuple[str, ...]
    acr: str
    claims: AccessTokenClaims


def _require_https(url: str, allow_insecure_http: bool) -> None:
    if not url.startswith("https://") and not allow_insecure_http:
        raise ValueError(
            f"{url!r} is not an https:// URL; pass allow_insecure_http=True for local testing"
        )


class JwksCache:
    """Bastion's public keys by kid, fetched and refreshed as described in the module."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        refetch_interval_seconds: float = DEFAULT_REFETCH_INTERVAL_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._monotonic = monotonic
        self._client = client
        self._cache_seconds = cache_seconds
        self._refetch_interval = refetch_interval_seconds
        self._timeout = timeout_seconds
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None  # monotonic seconds
        self._lock = asyncio.Lock()
        #: Fetches made (for metrics and tests).
        self.fetches = 0

    async def get(self, kid: str) -> PublicKey | None:
        """The key for ``kid``, or None. Raises ``KeySetUnavailable`` when no keys can be had."""
        if self._age() is None or self._age_over(self._cache_seconds):
            await self._fetch(min_age=self._cache_seconds)
        key = self._keys.get(kid)
        if key is None and self._age_over(self._refetch_interval):
            await self._fetch(min_age=self._refetch_interval)  # perhaps a new key (rotation)
            key = self._keys.get(kid)
        return key

    def _age(self) -> float | None:
        return None if self._fetched_at is None else self._monotonic() - self._fetched_at

    def _age_over(self, seconds: float) -> bool:
        age = self._age()
        return age is None or age >= seconds

    async def _fetch(self, *, min_age: float) -> None:
        async with self._lock:
            if not self._age_over(min_age):
                return  # fetched by another request while this one waited
            try:
                keys = await self._download()
            except KeySetUnavailable:
                if not self._keys:
                    raise
                # Keep serving the keys we have (they are still Bastion's), and wait a full
                # refetch interval before the next try: no retry storm against Bastion.
                self._fetched_at = self._monotonic() - self._cache_seconds + self._refetch_interval
                return
            self._keys = keys
            self._fetched_at = self._monotonic()

    async def _download(self) -> dict[str, PublicKey]:
        import httpx  # noqa: PLC0415 - loaded with the client

        self.fetches += 1
        try:
            async with self._client.stream("GET", self.url, timeout=self._timeout) as response:
                if response.status_code != httpx.codes.OK:
                    raise KeySetUnavailable
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise KeySetUnavailable
            document = httpx.Response(200, content=bytes(body)).json()
        except (httpx.HTTPError, ValueError):
            raise KeySetUnavailable from None
        found = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(found, list):
            raise KeySetUnavailable
        keys: dict[str, PublicKey] = {}
        for jwk in found:
            if not isinstance(jwk, dict):
                continue
            try:
                key = PublicKey.from_jwk(jwk)
            except SigningKeyError:
                continue  # a key of another kind or algorithm verifies nothing here
            keys[key.kid] = key
        return keys


class BastionAuth:
    """A FastAPI dependency: ``Depends(auth)`` gives an :class:`AuthenticatedUser`."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        status_url: str | None = None,
        algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA,
        leeway_seconds: int = 30,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        refetch_interval_seconds: float = DEFAULT_REFETCH_INTERVAL_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        client: httpx.AsyncClient | None = None,
        allow_insecure_http: bool = False,
        clock: Clock | None = None,
        signature_cache: bool = True,
        signature_cache_entries: int = DEFAULT_ENTRIES,
    ) -> None:
        _require_https(jwks_url, allow_insecure_http)
        if status_url is not None:
            _require_https(status_url, allow_insecure_http)
        import httpx  # noqa: PLC0415 - see the TYPE_CHECKING import

        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self.settings = AccessTokenSettings(
            issuer=issuer,
            audience=audience,
            algorithm=algorithm,
            leeway_seconds=leeway_seconds,
            signature_cache=signature_cache,
            signature_cache_entries=signature_cache_entries,
        )
        #: Successful signature checks, bound to the JWK Set's key objects: a refetched set
        #: holds new objects, so every token is verified in full again after a refresh.
        self.signature_cache = SignatureCache(signature_cache_entries) if signature_cache else None
        self.jwks = JwksCache(
            jwks_url,
            client=self._client,
            cache_seconds=cache_seconds,
            refetch_interval_seconds=refetch_interval_seconds,
            timeout_seconds=timeout_seconds,
        )
        self.status_url = status_url
        self._timeout = timeout_seconds
        self._clock: Clock = clock or SystemClock()
        #: The dependency that also confirms the session with Bastion: ``Depends(auth.live)``.
        self.live: Callable[..., Awaitable[AuthenticatedUser]] = self._live_dependency()

    async def verify(self, token: str) -> AuthenticatedUser:
        """Offline verification. Raises ``InvalidToken`` or ``KeySetUnavailable``."""
        claims = await verify_access_token_with(
            token, self.jwks.get, self.settings, clock=self._clock, cache=self.signature_cache
        )
        return AuthenticatedUser(
            subject=claims.subject,
            session_id=claims.session_id,
            amr=tuple(m.value for m in claims.amr),
            acr=claims.acr.value,
            claims=claims,
        )

    async def confirm_live(self, token: str) -> None:
        """Ask Bastion whether the token's session is live now. Raises ``InvalidToken`` when
        it is not, ``KeySetUnavailable`` when Bastion cannot answer."""
        if self.status_url is None:
            raise RuntimeError("BastionAuth(status_url=...) is needed for live session checks")
        import httpx  # noqa: PLC0415 - loaded with the client

        try:
            response = await self._client.get(
                self.status_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self._timeout,
            )
        except httpx.HTTPError:
            raise KeySetUnavailable from None
        if response.status_code == httpx.codes.UNAUTHORIZED:
            raise InvalidToken(InvalidTokenReason.SESSION_REVOKED)
        if response.status_code != httpx.codes.OK:
            raise KeySetUnavailable

    @staticmethod
    def _token(request: Request) -> str:
        header = request.headers.get("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            error = NotAuthenticated()
            error.headers = {"WWW-Authenticate": "Bearer"}  # type: ignore[attr-defined]
            raise error
        return value.strip()

    async def __call__(
        self,
        request: Request,
        _: HTTPAuthorizationCredentials | None = Security(_bearer),
    ) -> AuthenticatedUser:
        return await self.verify(self._token(request))

    def _live_dependency(self) -> Callable[..., Awaitable[AuthenticatedUser]]:
        """A dependency that also confirms the session with Bastion (one request per call)."""

        async def live_user(
            request: Request,
            _: HTTPAuthorizationCredentials | None = Security(_bearer),
        ) -> AuthenticatedUser:
            token = self._token(request)
            user = await self.verify(token)
            await self.confirm_live(token)
            return user

        return live_user

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def __repr__(self) -> str:
        return f"BastionAuth(issuer={self.settings.issuer!r}, jwks_url={self.jwks.url!r})"

    def __getstate__(self) -> dict[str, Any]:  # pragma: no cover - not picklable on purpose
        raise TypeError("BastionAuth holds a network client and is not picklable")
