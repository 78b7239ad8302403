"""Verification of imported legacy hashes: bcrypt, PBKDF2 and scrypt. Never used to hash.

Accepted formats (a hash in any other shape raises :class:`InvalidStoredHash`):

``bcrypt``
    Modular crypt format ``$2b$<cost>$<22-char salt><31-char hash>``; ``$2a$`` and ``$2y$``
    too. bcrypt reads only the first 72 bytes of a password, so the systems that made these
    hashes silently truncated longer ones; we truncate the same way to keep those users able
    to log in (the rehash to Argon2id on that login ends the truncation).
``pbkdf2_sha256`` / ``pbkdf2_sha1``
    Django's format ``pbkdf2_sha256$<iterations>$<salt>$<base64(derived key)>``: the salt is
    the literal text between the dollars (used as UTF-8 bytes), the key is standard base64 with
    padding, and its length is the PBKDF2 ``dkLen`` (32 for Django's SHA-256 hasher).
``scrypt``
    Django's format ``scrypt$<salt>$<N>$<r>$<p>$<base64(derived key)>``, same salt and key
    encoding (Django's ``dkLen`` is 64). Note the order: salt first, then N, r, p.

Passwords are checked as their UTF-8 bytes *without* NFKC normalisation, the way those systems
computed them. Work factors are capped: a tampered or hostile import must not make one login
attempt burn seconds of CPU or gigabytes of memory. Every successful legacy verification must
be followed by a rehash to Argon2id (the verifier reports ``needs_rehash=True``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

import bcrypt

from bastion.identity.passwords.errors import InvalidStoredHash
from bastion.identity.passwords.interfaces import HashScheme
from bastion.identity.passwords.normalization import raw_password_bytes

__all__ = ["LEGACY_SCHEMES", "verify_legacy"]

LEGACY_SCHEMES = frozenset(
    {HashScheme.BCRYPT, HashScheme.PBKDF2_SHA256, HashScheme.PBKDF2_SHA1, HashScheme.SCRYPT}
)
#: bcrypt never reads past 72 bytes.
BCRYPT_MAX_PASSWORD_BYTES = 72
#: 2**16 rounds, about 5 s on a 2020s CPU: the most one login may cost.
MAX_BCRYPT_COST = 16
#: Django 6 uses 1.2 M iterations; five million is an ample ceiling.
MAX_PBKDF2_ITERATIONS = 5_000_000
#: scrypt needs about 128 * r * (N + p) bytes; refuse more than this per verification.
MAX_SCRYPT_MEMORY_BYTES = 128 * 1024 * 1024
#: Derived keys from 128 to 512 bits.
MIN_DERIVED_KEY_BYTES = 16
MAX_DERIVED_KEY_BYTES = 64

_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
_PBKDF2_DIGESTS = {HashScheme.PBKDF2_SHA256: "sha256", HashScheme.PBKDF2_SHA1: "sha1"}


def verify_legacy(scheme: HashScheme, encoded: str, password: str) -> bool:
    """True if ``password`` matches the legacy hash ``encoded`` of ``scheme``.

    Raises :class:`InvalidStoredHash` for a malformed hash or one beyond the work caps, and
    ``PasswordTooLong`` over the password byte cap.
    """
    secret = raw_password_bytes(password)
    if scheme is HashScheme.BCRYPT:
        return _bcrypt(encoded, secret)
    if scheme in _PBKDF2_DIGESTS:
        return _pbkdf2(encoded, secret, _PBKDF2_DIGESTS[scheme])
    if scheme is HashScheme.SCRYPT:
        return _scrypt(encoded, secret)
    raise InvalidStoredHash("not a legacy hash scheme")


def _bcrypt(encoded: str, secret: bytes) -> bool:
    match = _BCRYPT.fullmatch(encoded)
    if match is None:
        raise InvalidStoredHash("malformed bcrypt hash")
    if int(match.group(1)) > MAX_BCRYPT_COST:
        raise InvalidStoredHash("bcrypt cost above the cap")
    try:
        return bcrypt.checkpw(secret[:BCRYPT_MAX_PASSWORD_BYTES], encoded.encode("ascii"))
    except ValueError:
        raise InvalidStoredHash("malformed bcrypt hash") from None


def _pbkdf2(encoded: str, secret: bytes, digest: str) -> bool:
    parts = encoded.split("$")
    if len(parts) != 4:
        raise InvalidStoredHash("malformed PBKDF2 hash")
    _, iterations_text, salt, key_text = parts
    iterations = _int(iterations_text)
    if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
        raise InvalidStoredHash("PBKDF2 iterations outside the caps")
    expected = _key(key_text)
    actual = hashlib.pbkdf2_hmac(
        digest, secret, salt.encode("utf-8"), iterations, dklen=len(expected)
    )
    # Compare in constant time: a timing difference would leak how much of the key matched.
    return hmac.compare_digest(actual, expected)


def _scrypt(encoded: str, secret: bytes) -> bool:
    parts = encoded.split("$")
    if len(parts) != 6:
        raise InvalidStoredHash("malformed scrypt hash")
    _, salt, n_text, r_text, p_text, key_text = parts
    n, r, p = _int(n_text), _int(r_text), _int(p_text)
    if n < 2 or n & (n - 1) or r < 1 or p < 1:
        raise InvalidStoredHash("invalid scrypt parameters")
    memory = 128 * r * (n + p)
    if memory > MAX_SCRYPT_MEMORY_BYTES:
        raise InvalidStoredHash("scrypt memory above the cap")
    expected = _key(key_text)
    actual = hashlib.scrypt(
        secret,
        salt=salt.encode("utf-8"),
        n=n,
        r=r,
        p=p,
        maxmem=MAX_SCRYPT_MEMORY_BYTES + 1024 * 1024,  # OpenSSL's own estimate adds a little
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def _int(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise InvalidStoredHash("malformed work factor")
    return int(text)


def _key(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidStoredHash("malformed derived key") from None
    if not MIN_DERIVED_KEY_BYTES <= len(key) <= MAX_DERIVED_KEY_BYTES:
        raise InvalidStoredHash("derived key length outside the caps")
    return key
