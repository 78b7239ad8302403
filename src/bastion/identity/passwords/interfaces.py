"""The seams of the password domain: Protocols with their contracts, and the values they pass.

Ship a real default and an in-memory implementation of each; pick one with a setting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = ["BreachChecker", "HashScheme", "PasswordHasher", "VerifyResult"]


class HashScheme(enum.StrEnum):
    """The algorithm of a stored hash. Only Argon2id is ever written; the rest are verified."""

    ARGON2ID = "argon2id"
    ARGON2I = "argon2i"
    ARGON2D = "argon2d"
    BCRYPT = "bcrypt"
    PBKDF2_SHA256 = "pbkdf2_sha256"
    PBKDF2_SHA1 = "pbkdf2_sha1"
    SCRYPT = "scrypt"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of checking a password against a stored hash.

    ``needs_rehash`` says the stored hash is outdated (another algorithm, or other parameters
    than the configured ones). Act on it only when ``ok``: hash the password again and store
    the new hash (rehash on login).
    """

    ok: bool
    needs_rehash: bool
    scheme: HashScheme


class PasswordHasher(Protocol):
    """Turns passwords into stored hashes and checks passwords against them. Blocking and
    CPU/memory heavy: call through :class:`~bastion.identity.passwords.pool.HashingPool`."""

    def hash(self, password: str) -> str:
        """Returns a self-describing hash (PHC string) with a fresh random salt.

        Raises ``PasswordTooLong`` over the byte cap, before any hashing.
        """
        ...

    def verify(self, encoded: str, password: str) -> VerifyResult:
        """Returns whether ``password`` matches ``encoded`` and whether to rehash.

        A mismatch is ``ok=False``, never an exception. Raises ``PasswordTooLong`` over the
        byte cap and ``InvalidStoredHash`` for a hash in no known format or with parameters
        beyond the safety caps.
        """
        ...

    def dummy_verify(self, password: str) -> None:
        """Spends the time of one real verification and returns nothing.

        Call it when the account does not exist, so the response time does not reveal which
        accounts exist (user enumeration). Raises ``PasswordTooLong`` like :meth:`verify`.
        """
        ...


class BreachChecker(Protocol):
    """Knows passwords exposed in data breaches."""

    async def is_breached(self, password: str) -> bool:
        """Returns True if ``password`` (NFKC-normalised) appears in the breach corpus.

        Raises ``BreachCheckUnavailable`` when the corpus cannot be queried; never guesses.
        """
        ...
