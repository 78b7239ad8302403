"""The access-token service: issuing, verifying, key rotation and the JWK Set, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from bastion.clock import Clock, SystemClock
from bastion.identity.tokens.access import issue_access_token, verify_access_token
from bastion.identity.tokens.claims import AccessTokenClaims, AssuranceLevel, AuthMethod
from bastion.identity.tokens.errors import SigningKeyError
from bastion.identity.tokens.interfaces import KeyStore
from bastion.identity.tokens.keys import SigningKey, jwks
from bastion.identity.tokens.settings import AccessTokenSettings
from bastion.identity.tokens.sigcache import SignatureCache

__all__ = ["AccessTokenService"]


class AccessTokenService:
    """Access tokens bound to one settings object, key store and clock."""

    def __init__(
        self, settings: AccessTokenSettings, keys: KeyStore, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.clock: Clock = clock or SystemClock()
        #: Successful signature checks (None when ``settings.signature_cache`` is off).
        self.signature_cache: SignatureCache | None = (
            SignatureCache(settings.signature_cache_entries) if settings.signature_cache else None
        )

    async def issue(
        self,
        *,
        subject: str,
        session_id: str,
        amr: Sequence[AuthMethod],
        acr: AssuranceLevel,
        audience: str | None = None,
        ttl: timedelta | None = None,
        key: SigningKey | None = None,
    ) -> str:
        """See :func:`~bastion.identity.tokens.access.issue_access_token`."""
        return await issue_access_token(
            self.keys,
            self.settings,
            subject=subject,
            session_id=session_id,
            amr=amr,
            acr=acr,
            audience=audience,
            ttl=ttl,
            clock=self.clock,
            key=key,
        )

    async def verify(self, token: str, *, audience: str | None = None) -> AccessTokenClaims:
        """See :func:`~bastion.identity.tokens.access.verify_access_token`."""
        return await verify_access_token(
            token,
            self.keys,
            self.settings,
            audience=audience,
            clock=self.clock,
            cache=self.signature_cache,
        )

    async def ensure_active_key(self) -> SigningKey:
        """Return the active key, first generating and rotating in a new one if none signs now
        (first start, or the last key reached ``not_after``). Call at startup and periodically."""
        try:
            key = await self.keys.active_key()
        except SigningKeyError:
            key = None
        if key is None or key.algorithm is not self.settings.algorithm:
            key = SigningKey.generate(
                self.settings.algorithm, clock=self.clock, lifetime=self.settings.key_lifetime
            )
            await self.keys.rotate(key)
        return key

    async def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public JWK Set: every key that still verifies (retired ones within grace)."""
        return jwks(await self.keys.verification_keys())
