"""Asymmetric signing keys for access tokens, their public JWK Set, and sealing for storage.

A :class:`SigningKey` signs from ``created_at`` until ``not_after``; after that (or after a
rotation retires it) it only verifies, until the last token it signed has expired. Its ``kid``
is the RFC 7638 JWK thumbprint of its public key, so a kid can never be reused for another key.

Private keys are stored only sealed (:func:`seal`): the private JWK encrypted with
:class:`bastion.crypto.EnvelopeCipher`, bound to the key's kid and algorithm, so a sealed key
copied onto another key's row does not open.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from bastion.clock import Clock
from bastion.crypto import EnvelopeCipher, bind
from bastion.identity.tokens.errors import SigningKeyError

__all__ = [
    "PublicKey",
    "SealedSigningKey",
    "SigningAlgorithm",
    "SigningKey",
    "jwks",
    "seal",
    "unseal",
]

#: Binds sealed private keys to this use (see :func:`bastion.crypto.bind`).
_SEAL_CONTEXT = "bastion.identity.tokens.signing_key"
#: The key members a published JWK carries (RFC 7518 §6.2.1, RFC 8037 §2): never ``d``.
_PUBLIC_KEY_MEMBERS = ("kty", "crv", "x", "y")


class SigningAlgorithm(enum.StrEnum):
    """JWS algorithms for access tokens: asymmetric only, one curve each.

    ``EdDSA`` (RFC 8037) is the default for interoperability; RFC 9864 deprecates the name in
    favour of the fully specified ``Ed25519`` because ``EdDSA`` alone does not fix the curve.
    Here every EdDSA key is checked to be Ed25519, so the two produce equivalent tokens.
    """

    EDDSA = "EdDSA"
    ED25519 = "Ed25519"
    ES256 = "ES256"

    @property
    def key_type(self) -> str:
        return "EC" if self is SigningAlgorithm.ES256 else "OKP"

    @property
    def curve(self) -> str:
        return "P-256" if self is SigningAlgorithm.ES256 else "Ed25519"


JoseKey = OKPKey | ECKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private signing key with its validity window. The key never appears in ``repr``."""

    kid: str
    algorithm: SigningAlgorithm
    created_at: datetime
    not_after: datetime
    key: JoseKey = field(repr=False, compare=False)

    @classmethod
    def generate(
        cls,
        algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA,
        *,
        clock: Clock,
        lifetime: timedelta,
    ) -> SigningKey:
        """A fresh key that signs from now for ``lifetime``."""
        if algorithm is SigningAlgorithm.ES256:
            key: JoseKey = ECKey.generate_key("P-256", private=True)
        else:
            key = OKPKey.generate_key("Ed25519", private=True)
        now = clock.now()
        return cls._checked(key, algorithm, now, now + lifetime)

    @classmethod
    def from_private_jwk(
        cls,
        jwk: dict[str, Any],
        *,
        algorithm: SigningAlgorithm,
        created_at: datetime,
        not_after: datetime,
    ) -> SigningKey:
        """Load a private JWK. Raises :class:`SigningKeyError` if it is not a private key of
        ``algorithm``'s type and curve."""
        try:
            key_class = ECKey if algorithm.key_type == "EC" else OKPKey
            if jwk.get("kty") != algorithm.key_type:
                raise SigningKeyError(f"A {algorithm} key must have kty {algorithm.key_type}.")
            key: JoseKey = key_class.import_key(jwk)
        except (JoseError, ValueError, TypeError, KeyError):
            raise SigningKeyError("Not a valid JWK.") from None
        return cls._checked(key, algorithm, created_at, not_after)

    @classmethod
    def _checked(
        cls, key: JoseKey, algorithm: SigningAlgorithm, created_at: datetime, not_after: datetime
    ) -> SigningKey:
        if key.curve_name != algorithm.curve:
            raise SigningKeyError(f"A {algorithm} key must be on curve {algorithm.curve}.")
        if not key.is_private:
            raise SigningKeyError("A signing key must include its private part.")
        if not_after <= created_at:
            raise SigningKeyError("A signing key's not_after must follow its created_at.")
        return cls(key.thumbprint(), algorithm, created_at, not_after, key)

    def signs_at(self, now: datetime) -> bool:
        """True while this key may sign new tokens."""
        return self.created_at <= now < self.not_after

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (with ``kid``, ``alg``, ``use``). Never contains private members."""
        members = self.key.as_dict(private=False)
        public = {name: members[name] for name in _PUBLIC_KEY_MEMBERS if name in members}
        if "d" in public or "d" in members:
            # Defence in depth: publishing "d" would hand out the signing key itself.
            raise SigningKeyError("Refusing to publish a JWK with private members.")
        return {**public, "kid": self.kid, "alg": self.algorithm.value, "use": "sig"}

    def retired(self, at: datetime) -> SigningKey:
        """This key, no longer signing from ``at`` (still verifying until its tokens expire)."""
        return SigningKey(
            self.kid, self.algorithm, self.created_at, min(self.not_after, at), self.key
        )


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A verification-only key: a member of a JWK Set fetched by a resource server."""

    kid: str
    algorithm: SigningAlgorithm
    key: JoseKey = field(repr=False, compare=False)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        """Load a published JWK. Raises :class:`SigningKeyError` unless it is a public key of an
        allowed algorithm with a matching type and curve, and a kid. Private members are never
        imported (a JWK Set that carries them is refused outright)."""
        try:
            algorithm = SigningAlgorithm(str(jwk.get("alg")))
        except ValueError:
            raise SigningKeyError("A JWK without an allowed alg.") from None
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise SigningKeyError("A JWK without a kid.")
        if "d" in jwk:
            raise SigningKeyError("A published JWK must not contain private members.")
        if jwk.get("kty") != algorithm.key_type or jwk.get("crv") != algorithm.curve:
            raise SigningKeyError(
                f"A {algorithm} key must be {algorithm.key_type}/{algorithm.curve}."
            )
        members = {name: jwk[name] for name in _PUBLIC_KEY_MEMBERS if name in jwk}
        try:
            key_class = ECKey if algorithm.key_type == "EC" else OKPKey
            key: JoseKey = key_class.import_key(members)
        except (JoseError, ValueError, TypeError, KeyError):
            raise SigningKeyError("Not a valid JWK.") from None
        return cls(kid, algorithm, key)


@dataclass(frozen=True, slots=True)
class SealedSigningKey:
    """The storable form of a :class:`SigningKey`: metadata in clear, private key encrypted."""

    kid: str
    algorithm: SigningAlgorithm
    created_at: datetime
    not_after: datetime
    sealed_private_key: str = field(repr=False)


def _binding(kid: str, algorithm: SigningAlgorithm) -> bytes:
    return bind(_SEAL_CONTEXT, kid, algorithm.value)


def seal(key: SigningKey, cipher: EnvelopeCipher) -> SealedSigningKey:
    """Encrypt ``key``'s private JWK for storage, bound to its kid and algorithm."""
    private = json.dumps(key.key.as_dict(private=True), separators=(",", ":")).encode()
    sealed = cipher.encrypt(private, associated_data=_binding(key.kid, key.algorithm))
    return SealedSigningKey(key.kid, key.algorithm, key.created_at, key.not_after, sealed)


def unseal(sealed: SealedSigningKey, cipher: EnvelopeCipher) -> SigningKey:
    """Decrypt a stored key. Raises ``DecryptionFailed`` if the envelope does not open (wrong
    key, tampered, or moved from another row) and :class:`SigningKeyError` if the key inside
    does not match the stored kid."""
    plaintext = cipher.decrypt(
        sealed.sealed_private_key, associated_data=_binding(sealed.kid, sealed.algorithm)
    )
    key = SigningKey.from_private_jwk(
        json.loads(plaintext),
        algorithm=sealed.algorithm,
        created_at=sealed.created_at,
        not_after=sealed.not_after,
    )
    if key.kid != sealed.kid:
        raise SigningKeyError("A sealed signing key does not match its kid.")
    return key


def jwks(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, Any]]]:
    """The public JWK Set (RFC 7517 §5) of ``keys``: pass every key that still verifies,
    retired-but-unexpired ones included, so tokens they signed keep verifying elsewhere."""
    return {"keys": [key.public_jwk() for key in keys]}
