"""Opaque random tokens: sessions, refresh tokens, API keys, one-time links.

A token is ``<prefix>_<secret>``: the prefix names its kind (so a leaked token is recognisable by
secret scanners and a token of one kind is never accepted as another), the secret is 32 bytes
from :mod:`secrets` (256 bits), base64url-encoded.

Store only :func:`hash_token` of a token and look it up by that hash. Plain SHA-256 is the right
tool here, unlike for passwords: a slow, salted hash exists to make *guessing* a low-entropy
secret expensive, but nobody can guess 256 random bits, so a preimage search on SHA-256 is as
hopeless as guessing the token itself. A fast, unsalted hash also keeps lookups indexable and
cheap, so verifying a token cannot be turned into a CPU denial of service. A database leak
yields hashes that cannot be presented as tokens.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets

__all__ = [
    "TOKEN_BYTES",
    "TokenKind",
    "constant_time_equals",
    "hash_token",
    "is_well_formed",
    "new_token",
]

#: 256 bits of entropy: beyond brute force, and safe to hash with a fast hash.
TOKEN_BYTES = 32
_SECRET_CHARS = 43  # len(base64url(32 bytes)) without padding
_SECRET = re.compile(rf"[A-Za-z0-9_-]{{{_SECRET_CHARS}}}")


class TokenKind(enum.StrEnum):
    """What a token is for; the value is its prefix. Never change a value (tokens in the wild
    carry it)."""

    SESSION = "bst_ses"
    REFRESH = "bst_ref"
    API_KEY = "bst_key"
    SETUP = "bst_setup"
    PASSWORD_RESET = "bst_reset"  # noqa: S105 - a token prefix, not a secret
    EMAIL_VERIFICATION = "bst_verify"
    INVITATION = "bst_invite"
    MFA_CHALLENGE = "bst_mfa"
    WEBAUTHN_CEREMONY = "bst_wac"


#: Each kind's ``<prefix>_`` and the whole shape of its tokens, made once (a token's checks
#: then cost no enum call, string building or slicing).
_PREFIXES: dict[TokenKind, str] = {kind: f"{kind.value}_" for kind in TokenKind}
_SHAPES: dict[TokenKind, re.Pattern[str]] = {
    kind: re.compile(rf"{re.escape(prefix)}[A-Za-z0-9_-]{{{_SECRET_CHARS}}}")
    for kind, prefix in _PREFIXES.items()
}


def _prefix(kind: TokenKind) -> str:
    """``f"{TokenKind(kind).value}_"``: looked up for a member, through the enum otherwise
    (its ``ValueError`` for anything that is not a kind included)."""
    if type(kind) is TokenKind:
        return _PREFIXES[kind]
    return f"{TokenKind(kind).value}_"


def new_token(kind: TokenKind) -> str:
    """Return a fresh ``<prefix>_<secret>`` token with 256 bits of entropy."""
    return _prefix(kind) + secrets.token_urlsafe(TOKEN_BYTES)


def is_well_formed(token: str, kind: TokenKind) -> bool:
    """True if ``token`` has the shape of a ``kind`` token.

    A cheap filter before a lookup, not an authentication check: only finding
    :func:`hash_token` of the token in the store authenticates it.
    """
    if type(kind) is TokenKind:
        # The prefix and the secret's shape in one match.
        return isinstance(token, str) and _SHAPES[kind].fullmatch(token) is not None
    prefix = _prefix(kind)
    return (
        isinstance(token, str)
        and token.startswith(prefix)
        and _SECRET.fullmatch(token[len(prefix) :]) is not None
    )


def hash_token(token: str) -> str:
    """SHA-256 hex digest of the whole token (prefix included), for storage and lookup."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in time that does not depend on where they first differ.

    ``==`` stops at the first differing byte, so response timing would let an attacker recover
    a secret byte by byte. Strings are compared as UTF-8 (``hmac.compare_digest`` refuses
    non-ASCII ``str``). Lengths may leak, which is harmless for fixed-length tokens and digests.
    """
    a_bytes = a.encode("utf-8") if isinstance(a, str) else a
    b_bytes = b.encode("utf-8") if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)
