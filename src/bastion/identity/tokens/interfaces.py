"""The seam between token issuing/verification and where signing keys live."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bastion.identity.tokens.keys import SigningKey

__all__ = ["KeyStore"]


class KeyStore(Protocol):
    """Holds the signing keys: one active signer, plus every key whose tokens may still be
    valid. Implementations: :class:`~bastion.identity.tokens.keystore.InMemoryKeyStore`; a
    database-backed store persists :func:`~bastion.identity.tokens.keys.seal`-ed keys.

    "Verifiable" means ``now <= key.not_after + grace``, where ``grace`` covers the longest
    token lifetime plus the clock leeway: a token signed just before a key retires stays
    verifiable until it expires.
    """

    async def active_key(self) -> SigningKey:
        """Returns the key to sign new tokens with: the newest key that signs now.

        Raises ``SigningKeyError`` when there is none (fail closed: no unsigned fallback).
        """
        ...

    async def verification_keys(self) -> Sequence[SigningKey]:
        """Returns every verifiable key, the active one included (for the JWK Set)."""
        ...

    async def get(self, kid: str) -> SigningKey | None:
        """Returns the verifiable key with this ``kid``, or None (unknown or past its grace)."""
        ...

    async def add(self, key: SigningKey) -> None:
        """Stores ``key``. Adding the same key twice is a no-op."""
        ...

    async def rotate(self, new_key: SigningKey) -> None:
        """Makes ``new_key`` the signer: retires the current active key as of now (it keeps
        verifying for its grace period) and adds ``new_key``.

        Raises ``SigningKeyError`` if ``new_key`` cannot sign now.
        """
        ...
