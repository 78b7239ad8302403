"""AES-256-GCM with a caller-supplied nonce. Hazardous: see :mod:`bastion.crypto.hazmat`.

The nonce is an argument so that NIST's known-answer vectors can be replayed; the safe recipe
(:mod:`bastion.crypto.envelope`) always draws a fresh random one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: AES-256: 32-byte keys only; a 128-bit key is refused rather than silently accepted.
AES256_GCM_KEY_BYTES = 32
#: 96-bit nonces: the length GCM is specified and analysed for (NIST SP 800-38D §8.2).
AES_GCM_NONCE_BYTES = 12
#: The full 128-bit tag; truncated tags weaken forgery resistance (SP 800-38D App. C).
AES_GCM_TAG_BYTES = 16


#: AESGCM objects by key: building one sets up the cipher for its key, which costs about as
#: much as sealing a short secret. The objects are immutable (pyca's are frozen: safe to share
#: between threads) and the keys few (the envelope's subkeys), so they are kept, at most
#: :data:`_CIPHERS_MAX` of them (the map starts over beyond that).
_CIPHERS: dict[bytes, AESGCM] = {}
_CIPHERS_MAX = 16


def _check(key: bytes, nonce: bytes) -> AESGCM:
    cipher = _CIPHERS.get(key) if type(key) is bytes else None
    if cipher is None and len(key) != AES256_GCM_KEY_BYTES:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    if len(nonce) != AES_GCM_NONCE_BYTES:
        raise ValueError("AES-GCM needs a 12-byte nonce")
    if cipher is None:
        cipher = AESGCM(key)
        if type(key) is bytes:  # immutable: a bytearray could change under its cached cipher
            if len(_CIPHERS) >= _CIPHERS_MAX:
                _CIPHERS.clear()
            _CIPHERS[key] = cipher
    return cipher


def aes256_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Return ``ciphertext || tag``. The caller guarantees the (key, nonce) pair is never reused."""
    return _check(key, nonce).encrypt(nonce, plaintext, aad)


def aes256_gcm_decrypt(key: bytes, nonce: bytes, ciphertext_and_tag: bytes, aad: bytes) -> bytes:
    """Return the plaintext.

    Raises ``cryptography.exceptions.InvalidTag`` when the tag does not authenticate the
    ciphertext and ``aad`` under ``key`` (tampering, wrong key or wrong associated data).
    """
    return _check(key, nonce).decrypt(nonce, ciphertext_and_tag, aad)
