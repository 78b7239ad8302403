"""Argon2id password hashing with rehash-on-login and legacy import support.

New hashes are always Argon2id (RFC 9106) at the configured parameters, in the PHC string
format (``$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>``), over the NFKC-normalised UTF-8
password. Verification also accepts Argon2i/Argon2d/other-parameter Argon2id hashes and the
legacy formats of :mod:`~bastion.identity.passwords.legacy`, and reports ``needs_rehash``
whenever the stored hash is not exactly what :meth:`Argon2Hasher.hash` would write today.
"""

from __future__ import annotations

import secrets

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bastion.identity.passwords.errors import InvalidStoredHash
from bastion.identity.passwords.interfaces import HashScheme, VerifyResult
from bastion.identity.passwords.legacy import verify_legacy
from bastion.identity.passwords.normalization import password_bytes
from bastion.identity.passwords.settings import (
    MAX_HASH_MEMORY_KIB,
    MAX_HASH_PARALLELISM,
    MAX_HASH_TIME_COST,
    PasswordSettings,
)

__all__ = ["HASH_BYTES", "SALT_BYTES", "Argon2Hasher", "identify"]

#: 128-bit salts and 256-bit tags (RFC 9106 §4 recommendations).
SALT_BYTES = 16
HASH_BYTES = 32

_ARGON2 = {
    "$argon2id$": HashScheme.ARGON2ID,
    "$argon2i$": HashScheme.ARGON2I,
    "$argon2d$": HashScheme.ARGON2D,
}
_PREFIXES = {
    **_ARGON2,
    "$2a$": HashScheme.BCRYPT,
    "$2b$": HashScheme.BCRYPT,
    "$2y$": HashScheme.BCRYPT,
    "pbkdf2_sha256$": HashScheme.PBKDF2_SHA256,
    "pbkdf2_sha1$": HashScheme.PBKDF2_SHA1,
    "scrypt$": HashScheme.SCRYPT,
}


def identify(encoded: str) -> HashScheme:
    """The scheme of a stored hash; raises :class:`InvalidStoredHash` if none matches."""
    if isinstance(encoded, str):
        for prefix, scheme in _PREFIXES.items():
            if encoded.startswith(prefix):
                return scheme
    raise InvalidStoredHash("unknown password hash format")


class Argon2Hasher:
    """The default :class:`~bastion.identity.passwords.interfaces.PasswordHasher`."""

    def __init__(self, settings: PasswordSettings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.hash_time_cost,
            memory_cost=settings.hash_memory_kib,
            parallelism=settings.hash_parallelism,
            hash_len=HASH_BYTES,
            salt_len=SALT_BYTES,
            type=argon2.Type.ID,
        )
        # Computed now, at the current parameters, so that dummy_verify() costs exactly what a
        # real verification costs, from the first request on.
        self._dummy_hash = self._hasher.hash(secrets.token_bytes(SALT_BYTES))

    @property
    def parameters(self) -> argon2.Parameters:
        return argon2.extract_parameters(self._dummy_hash)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password_bytes(password))

    def verify(self, encoded: str, password: str) -> VerifyResult:
        scheme = identify(encoded)
        if scheme not in _ARGON2.values():
            # Legacy hashes always need a rehash: the algorithm itself is outdated.
            ok = verify_legacy(scheme, encoded, password)
            return VerifyResult(ok=ok, needs_rehash=True, scheme=scheme)
        secret = password_bytes(password)
        _check_argon2_caps(encoded)
        try:
            self._hasher.verify(encoded, secret)
            ok = True
        except VerifyMismatchError:
            ok = False
        except (InvalidHashError, VerificationError):
            raise InvalidStoredHash("malformed Argon2 hash") from None
        return VerifyResult(
            ok=ok, needs_rehash=self._hasher.check_needs_rehash(encoded), scheme=scheme
        )

    def dummy_verify(self, password: str) -> None:
        # Hash even for unknown users: the response time must not reveal which accounts exist
        # (user enumeration). Same parameters, same code path as verify(), result discarded.
        self.verify(self._dummy_hash, password)


def _check_argon2_caps(encoded: str) -> None:
    # A stored hash carries its own cost parameters; a tampered row asking for 64 GiB would
    # otherwise let one login attempt exhaust the server's memory.
    try:
        params = argon2.extract_parameters(encoded)
    except InvalidHashError:
        raise InvalidStoredHash("malformed Argon2 hash") from None
    if (
        params.memory_cost > MAX_HASH_MEMORY_KIB
        or params.time_cost > MAX_HASH_TIME_COST
        or params.parallelism > MAX_HASH_PARALLELISM
    ):
        raise InvalidStoredHash("Argon2 parameters above the caps")
