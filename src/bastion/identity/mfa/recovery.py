"""Recovery codes: ten single-use codes, shown once, stored as digests.

A code is 20 Crockford base32 characters (100 random bits) written in four groups,
``XXXXX-XXXXX-XXXXX-XXXXX``. Input is normalised before hashing: case, spaces and hyphens do not
matter, and the letters Crockford's alphabet leaves out for legibility (I, L, O) read as 1, 1, 0.
100 bits are beyond online and offline guessing, so SHA-256 is the right digest (as for
:mod:`bastion.crypto.tokens`): a database leak yields nothing usable.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["CODE_COUNT", "hash_code", "new_codes", "normalize_code"]

CODE_COUNT = 10
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CHARS = 20
_GROUP = 5
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0"})
#: Longest input looked at: a normalised code is 20 characters; separators add a few.
MAX_INPUT_CHARS = 64


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_CHARS))
    return "-".join(raw[i : i + _GROUP] for i in range(0, _CHARS, _GROUP))


def new_codes(count: int = CODE_COUNT) -> list[str]:
    """``count`` fresh codes, for display once."""
    return [_new_code() for _ in range(count)]


def normalize_code(code: str) -> str | None:
    """The canonical form of a typed code, or None when it cannot be one."""
    if len(code) > MAX_INPUT_CHARS:
        return None
    text = code.upper().replace("-", "").replace(" ", "").translate(_CONFUSABLE)
    if len(text) != _CHARS or any(c not in _ALPHABET for c in text):
        return None
    return text


def hash_code(normalized: str) -> str:
    """SHA-256 hex digest of a normalised code, for storage and lookup."""
    return hashlib.sha256(b"bastion-recovery-code:" + normalized.encode("ascii")).hexdigest()
