"""Argon2id password hashing with rehash-on-login and legacy import support.

New hashes are always Argon2id (RFC 9106) at the configured parameters, in the PHC string
format (``$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>``), over the NFKC-normalised UTF-8
password. Verification also accepts Argon2i/Argon2d/other-parameter Argon2id hashes and the
legacy formats of :mod:`~bastion.identity.passwords.legacy`, and reports ``needs_rehash``
whenever the stored hash is not exactly what :meth:`Argon2Hasher.hash` would write today.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets

import argon2
from _argon2_cffi_bindings import ffi, lib
from argon2.exceptions import (
    HashingError,
    InvalidHashError,
    VerificationError,
    VerifyMismatchError,
)
from argon2.low_level import error_to_str

from bastion.identity.passwords.errors import InvalidStoredHash
from bastion.identity.passwords.interfaces import HashScheme, VerifyResult
from bastion.identity.passwords.legacy import verify_legacy
from bastion.identity.passwords.normalization import password_bytes
from bastion.identity.passwords.pool import usable_cores
from bastion.identity.passwords.scratch import ScratchMemory
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
#: An Argon2id hash as libargon2 writes it (unpadded standard base64); only such hashes at
#: exactly the configured parameters take the reusable-memory path, anything else is left to
#: libargon2's own parser and allocator.
_ARGON2ID_PHC = re.compile(
    r"\$argon2id\$v=19\$m=([0-9]{1,10}),t=([0-9]{1,10}),p=([0-9]{1,10})"
    r"\$([A-Za-z0-9+/]{1,64})\$([A-Za-z0-9+/]{1,128})"
)


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
        self._cost = (settings.hash_memory_kib, settings.hash_time_cost, settings.hash_parallelism)
        # One reusable buffer per hashing thread at most (see scratch.py).
        self._scratch = ScratchMemory(
            settings.hash_memory_kib * 1024, settings.hash_max_concurrency or usable_cores()
        )
        # Computed now, at the current parameters, so that dummy_verify() costs exactly what a
        # real verification costs, from the first request on. (libargon2's allocator: no
        # buffer is mapped before the first request needs one.)
        self._dummy_hash = self._hasher.hash(secrets.token_bytes(SALT_BYTES))

    @property
    def parameters(self) -> argon2.Parameters:
        return argon2.extract_parameters(self._dummy_hash)

    def hash(self, password: str) -> str:
        secret = password_bytes(password)
        salt = secrets.token_bytes(SALT_BYTES)
        tag = self._argon2id(secret, salt, HASH_BYTES)
        if tag is None:
            return self._hasher.hash(secret, salt=salt)
        m, t, p = self._cost
        return f"$argon2id$v=19$m={m},t={t},p={p}${_b64(salt)}${_b64(tag)}"

    def verify(self, encoded: str, password: str) -> VerifyResult:
        scheme = identify(encoded)
        if scheme not in _ARGON2.values():
            # Legacy hashes always need a rehash: the algorithm itself is outdated.
            ok = verify_legacy(scheme, encoded, password)
            return VerifyResult(ok=ok, needs_rehash=True, scheme=scheme)
        secret = password_bytes(password)
        current = self._verify_current(encoded, secret)
        if current is not None:
            return VerifyResult(ok=current, needs_rehash=False, scheme=scheme)
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

    def release_memory(self) -> int:
        """Unmap the Argon2 buffers kept for the next hash (those not in use); returns how many.
        The password service calls it when hashing has been idle for a moment."""
        return self._scratch.release()

    def _verify_current(self, encoded: str, secret: bytes) -> bool | None:
        """Verification of an Argon2id hash at exactly the configured parameters (the stored
        hashes of every account, and the dummy) in a reused buffer; None for any other hash,
        which libargon2 then parses and checks itself."""
        match = _ARGON2ID_PHC.fullmatch(encoded)
        if match is None or tuple(map(int, match.group(1, 2, 3))) != self._cost:
            return None
        salt, expected = _unb64(match[4]), _unb64(match[5])
        if salt is None or expected is None or len(salt) != SALT_BYTES:
            return None
        if len(expected) != HASH_BYTES:
            return None
        tag = self._argon2id(secret, salt, HASH_BYTES)
        if tag is None:
            return None
        return hmac.compare_digest(tag, expected)

    def _argon2id(self, secret: bytes, salt: bytes, length: int) -> bytes | None:
        """Raw Argon2id at the configured parameters in a reused buffer; None when every
        buffer is taken (the caller then goes through libargon2's allocator)."""
        buffer = self._scratch.take()
        if buffer is None:
            return None
        m, t, p = self._cost
        out = ffi.new("uint8_t[]", length)
        # Views of the caller's bytes, held until libargon2 returns (read only: no CLEAR flags).
        pwd, salt_view = ffi.from_buffer("uint8_t[]", secret), ffi.from_buffer("uint8_t[]", salt)
        try:
            context = ffi.new(
                "argon2_context *",
                {
                    "out": out,
                    "outlen": length,
                    "pwd": pwd,
                    "pwdlen": len(secret),
                    "salt": salt_view,
                    "saltlen": len(salt),
                    "t_cost": t,
                    "m_cost": m,
                    "lanes": p,
                    "threads": p,
                    "version": lib.ARGON2_VERSION_13,
                    "allocate_cbk": buffer.allocate,
                    "free_cbk": buffer.free,
                    "flags": lib.ARGON2_DEFAULT_FLAGS,
                },
            )
            status = lib.argon2_ctx(context, lib.Argon2_id)
        finally:
            self._scratch.give_back(buffer)
        if status != lib.ARGON2_OK:
            raise HashingError(error_to_str(status))
        return bytes(ffi.buffer(out))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes | None:
    """Unpadded standard base64 in its one canonical spelling, else None."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None


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
