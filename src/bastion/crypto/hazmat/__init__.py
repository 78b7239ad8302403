"""Raw cryptographic primitives. **Do not use these from application code.**

Everything here is easy to misuse: the AEAD functions take a caller-chosen nonce (reusing one
with the same key under AES-GCM reveals the authentication key and the XOR of the plaintexts),
and the KDF takes caller-chosen salt and info (reusing an ``info`` label for two purposes makes
their keys equal). They exist so that the safe recipes above this package
(:mod:`bastion.crypto.keyring`, :mod:`bastion.crypto.envelope`) and the known-answer tests share
one thin, audited layer over ``cryptography``.

Application code calls the recipes instead: they pick the nonces, bind the labels and version
their output. A new use of this package outside :mod:`bastion.crypto` needs a security review.
"""

from bastion.crypto.hazmat.aead import (
    AES256_GCM_KEY_BYTES,
    AES_GCM_NONCE_BYTES,
    AES_GCM_TAG_BYTES,
    aes256_gcm_decrypt,
    aes256_gcm_encrypt,
)
from bastion.crypto.hazmat.kdf import HKDF_SHA256_MAX_BYTES, hkdf_sha256

__all__ = [
    "AES256_GCM_KEY_BYTES",
    "AES_GCM_NONCE_BYTES",
    "AES_GCM_TAG_BYTES",
    "HKDF_SHA256_MAX_BYTES",
    "aes256_gcm_decrypt",
    "aes256_gcm_encrypt",
    "hkdf_sha256",
]
