"""Authenticated encryption of small secrets at rest (private signing keys, TOTP secrets).

AES-256-GCM under a subkey from :mod:`bastion.crypto.keyring`, a fresh random 96-bit nonce per
encryption, and a self-describing, versioned format. Wire format, version 1, carried as base64url
without padding so it fits any text column:

    offset  size      field
    0       1         version = 0x01
    1       4         key id (:func:`bastion.crypto.keyring.derive_key_id`)
    5       12        nonce, random for every encryption
    17      n + 16    AES-256-GCM ciphertext || 128-bit tag

The AEAD associated data is ``header (bytes 0-4) || associated_data``. Authenticating the header
stops a version downgrade or key-id swap; the caller's ``associated_data`` binds the ciphertext
to where it lives (table, column, row id: build it with :func:`bind`), so a ciphertext copied into
another row or field fails to decrypt instead of handing one user's secret to another.

Rotation (like ``cryptography``'s ``MultiFernet``): the first key encrypts, every key decrypts,
selected by key id rather than by trial. :meth:`EnvelopeCipher.rotate` re-encrypts under the
current key.

Nonce budget: random 96-bit nonces are safe for 2**32 encryptions per key (NIST SP 800-38D
§8.3); secrets at rest number in the thousands, and a root-key rotation resets the count.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag

from bastion.crypto.errors import DecryptionFailed, DecryptionFailure, KeyringError
from bastion.crypto.hazmat import (
    AES256_GCM_KEY_BYTES,
    AES_GCM_NONCE_BYTES,
    AES_GCM_TAG_BYTES,
    aes256_gcm_decrypt,
    aes256_gcm_encrypt,
)
from bastion.crypto.keyring import KEY_ID_BYTES, DerivedKey, KeyPurpose, Keyring

__all__ = ["MAX_PLAINTEXT_BYTES", "VERSION", "EnvelopeCipher", "bind"]

VERSION = 1
#: "Small secrets": anything larger is a misuse (and a decryption-time memory sink).
MAX_PLAINTEXT_BYTES = 64 * 1024
_HEADER_BYTES = 1 + KEY_ID_BYTES
_OVERHEAD = _HEADER_BYTES + AES_GCM_NONCE_BYTES + AES_GCM_TAG_BYTES
_MAX_TOKEN_CHARS = (MAX_PLAINTEXT_BYTES + _OVERHEAD) * 4 // 3 + 4
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_LENGTH_PREFIX = struct.Struct(">I")


def bind(*parts: str) -> bytes:
    """Encode the place a secret lives as associated data, unambiguously.

    Each part is length-prefixed, so ``bind("a|b", "c")`` and ``bind("a", "b|c")`` differ.
    Example: ``bind("signing_keys", "private_key", kid)``.
    """
    if not parts:
        raise ValueError("bind() needs at least one part")
    out = bytearray()
    for part in parts:
        data = part.encode("utf-8")
        out += _LENGTH_PREFIX.pack(len(data)) + data
    return bytes(out)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise DecryptionFailed(DecryptionFailure.MALFORMED)
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionFailed(DecryptionFailure.MALFORMED) from None


class EnvelopeCipher:
    """Encrypts under the first key; decrypts under whichever key the envelope names."""

    def __init__(self, keys: Sequence[DerivedKey]) -> None:
        if not keys:
            raise KeyringError("An envelope cipher needs at least one key.")
        for key in keys:
            if len(key.key) != AES256_GCM_KEY_BYTES or len(key.key_id) != KEY_ID_BYTES:
                raise KeyringError("Envelope keys are 32 bytes with a 4-byte key id.")
        self._primary = keys[0]
        self._by_id = {key.key_id: key for key in keys}
        if len(self._by_id) != len(keys):
            raise KeyringError("Two envelope keys share a key id.")

    @classmethod
    def from_keyring(
        cls, keyring: Keyring, purpose: KeyPurpose = KeyPurpose.SECRETS_AT_REST
    ) -> EnvelopeCipher:
        """A cipher over the keyring's subkeys for ``purpose`` (current root first)."""
        return cls(keyring.versions(purpose, AES256_GCM_KEY_BYTES))

    def __repr__(self) -> str:
        return f"EnvelopeCipher(key_ids={[k.hex() for k in self._by_id]})"

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> str:
        """Return the envelope of ``plaintext``, bound to ``associated_data`` (see :func:`bind`)."""
        if not associated_data:
            raise ValueError("associated_data must bind the ciphertext to its place (see bind())")
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise ValueError(f"envelopes hold at most {MAX_PLAINTEXT_BYTES} bytes")
        header = bytes([VERSION]) + self._primary.key_id
        # A fresh random nonce every time: reusing a (key, nonce) pair breaks GCM completely.
        nonce = secrets.token_bytes(AES_GCM_NONCE_BYTES)
        sealed = aes256_gcm_encrypt(self._primary.key, nonce, plaintext, header + associated_data)
        return _b64encode(header + nonce + sealed)

    def decrypt(self, envelope: str, *, associated_data: bytes) -> bytes:
        """Return the plaintext.

        Raises :class:`DecryptionFailed` (one opaque error; the cause is in ``reason``) when the
        envelope is malformed, of an unknown version, under a key this cipher does not hold, or
        fails authentication: tampered, truncated, or moved to other ``associated_data``.
        """
        key, raw = self._parse(envelope)
        nonce = raw[_HEADER_BYTES : _HEADER_BYTES + AES_GCM_NONCE_BYTES]
        sealed = raw[_HEADER_BYTES + AES_GCM_NONCE_BYTES :]
        try:
            return aes256_gcm_decrypt(key.key, nonce, sealed, raw[:_HEADER_BYTES] + associated_data)
        except InvalidTag:
            raise DecryptionFailed(DecryptionFailure.AUTHENTICATION_FAILED) from None

    def needs_rotation(self, envelope: str) -> bool:
        """True if ``envelope`` is under an older key (it still decrypts; :meth:`rotate` it)."""
        key, _ = self._parse(envelope)
        return key.key_id != self._primary.key_id

    def rotate(self, envelope: str, *, associated_data: bytes) -> str:
        """Decrypt under any known key and re-encrypt under the current one."""
        plaintext = self.decrypt(envelope, associated_data=associated_data)
        return self.encrypt(plaintext, associated_data=associated_data)

    def _parse(self, envelope: str) -> tuple[DerivedKey, bytes]:
        if not isinstance(envelope, str):
            raise DecryptionFailed(DecryptionFailure.MALFORMED)
        if len(envelope) > _MAX_TOKEN_CHARS:
            raise DecryptionFailed(DecryptionFailure.TOO_LARGE)
        raw = _b64decode(envelope)
        if len(raw) < _OVERHEAD:
            raise DecryptionFailed(DecryptionFailure.MALFORMED)
        if raw[0] != VERSION:
            raise DecryptionFailed(DecryptionFailure.UNSUPPORTED_VERSION)
        key = self._by_id.get(raw[1:_HEADER_BYTES])
        if key is None:
            raise DecryptionFailed(DecryptionFailure.UNKNOWN_KEY)
        return key, raw
