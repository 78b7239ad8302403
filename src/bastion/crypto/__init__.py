"""Safe cryptographic recipes. Application code imports from here, never from ``hazmat``.

- :mod:`~bastion.crypto.keyring`: purpose-bound subkeys of the root secret key (HKDF-SHA256).
- :mod:`~bastion.crypto.envelope`: authenticated encryption of small secrets at rest
  (AES-256-GCM, key ids for rotation, associated data binding a ciphertext to its row).
- :mod:`~bastion.crypto.tokens`: opaque random tokens, their storage hash, constant-time compare.
- :mod:`~bastion.crypto.hazmat`: the raw primitives under the recipes. Hazardous; do not use.
"""

from bastion.crypto.envelope import MAX_PLAINTEXT_BYTES, EnvelopeCipher, bind
from bastion.crypto.errors import CryptoError, DecryptionFailed, DecryptionFailure, KeyringError
from bastion.crypto.keyring import (
    DerivedKey,
    KeyPurpose,
    Keyring,
    RootKey,
    derive_key,
    derive_key_id,
)
from bastion.crypto.tokens import (
    TOKEN_BYTES,
    TokenKind,
    constant_time_equals,
    hash_token,
    is_well_formed,
    new_token,
)

__all__ = [
    "MAX_PLAINTEXT_BYTES",
    "TOKEN_BYTES",
    "CryptoError",
    "DecryptionFailed",
    "DecryptionFailure",
    "DerivedKey",
    "EnvelopeCipher",
    "KeyPurpose",
    "Keyring",
    "KeyringError",
    "RootKey",
    "TokenKind",
    "bind",
    "constant_time_equals",
    "derive_key",
    "derive_key_id",
    "hash_token",
    "is_well_formed",
    "new_token",
]
