"""Typed settings of access tokens, to be nested in :class:`bastion.config.Settings`."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from bastion.identity.tokens.keys import SigningAlgorithm
from bastion.identity.tokens.sigcache import DEFAULT_ENTRIES, MAX_ENTRIES

__all__ = ["AccessTokenSettings"]


class AccessTokenSettings(BaseModel):
    """Issuer, audience, algorithm and lifetimes of access-token JWTs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(
        default="bastion", min_length=1, description="The iss claim; use the public base URL."
    )
    audience: str = Field(default="bastion", min_length=1, description="The default aud claim.")
    algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA
    ttl_seconds: int = Field(
        default=300,
        ge=30,
        le=86_400,
        description="Access token lifetime. Short: a JWT cannot be revoked before it expires.",
    )
    leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="Clock skew tolerated on exp, nbf and iat."
    )
    key_lifetime_days: int = Field(
        default=90, ge=1, le=730, description="How long a signing key signs before rotation."
    )
    signature_cache: bool = Field(
        default=True,
        description="Remember successful signature checks per token (claims still checked on "
        "every use); off verifies every signature every time.",
    )
    signature_cache_entries: int = Field(
        default=DEFAULT_ENTRIES,
        ge=1,
        le=MAX_ENTRIES,
        description="At most this many verified tokens remembered per process (oldest evicted).",
    )

    @property
    def ttl(self) -> timedelta:
        return timedelta(seconds=self.ttl_seconds)

    @property
    def leeway(self) -> timedelta:
        return timedelta(seconds=self.leeway_seconds)

    @property
    def key_lifetime(self) -> timedelta:
        return timedelta(days=self.key_lifetime_days)

    @property
    def verification_grace(self) -> timedelta:
        """How long a retired key keeps verifying: its last token's lifetime plus leeway."""
        return self.ttl + self.leeway
