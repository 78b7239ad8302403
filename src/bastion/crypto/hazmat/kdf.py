"""HKDF-SHA256 (RFC 5869) with caller-chosen salt and info. Hazardous: see
:mod:`bastion.crypto.hazmat`; application code derives keys with :mod:`bastion.crypto.keyring`,
which owns the ``info`` labels.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: RFC 5869 §2.3: L <= 255 * HashLen.
HKDF_SHA256_MAX_BYTES = 255 * 32


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """Extract-then-expand ``length`` bytes from ``ikm``; ``salt=None`` means HashLen zero bytes."""
    if not 0 < length <= HKDF_SHA256_MAX_BYTES:
        raise ValueError(f"HKDF-SHA256 output must be 1..{HKDF_SHA256_MAX_BYTES} bytes")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)
