"""Errors of the crypto recipes.

    BastionError
    └── CryptoError                500 crypto_error
        ├── KeyringError           500 keyring_error       unusable root key (empty, too short,
        │                                                  colliding key ids): a startup problem
        └── DecryptionFailed       500 decryption_failed   any stored ciphertext that cannot be
                                                           opened; ``reason`` says why

Fail closed and opaque: every way a ciphertext can be bad raises the same
:class:`DecryptionFailed` with the same message. The precise ``reason`` (a
:class:`DecryptionFailure`) is for the audit log and the operator, never for a client: telling an
attacker *which* check failed turns the decryptor into an oracle. These errors are server-side
(status 500): a client never supplies our ciphertexts.
"""

from __future__ import annotations

import enum

from bastion.errors import BastionError

__all__ = ["CryptoError", "DecryptionFailed", "DecryptionFailure", "KeyringError"]


class CryptoError(BastionError):
    code = "crypto_error"
    status = 500
    title = "Internal cryptographic error"


class KeyringError(CryptoError):
    code = "keyring_error"


class DecryptionFailure(enum.StrEnum):
    """Why a ciphertext was refused (recorded, never shown)."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KEY = "unknown_key"
    AUTHENTICATION_FAILED = "authentication_failed"


class DecryptionFailed(CryptoError):
    code = "decryption_failed"
    title = "A stored secret could not be decrypted"

    def __init__(self, reason: DecryptionFailure) -> None:
        super().__init__()
        #: The precise failure, for the audit log only.
        self.reason = reason
