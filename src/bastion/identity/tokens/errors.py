"""Errors of the token domain.

    BastionError
    └── TokenError                 400 token_error
        ├── InvalidToken           401 invalid_token      every way a presented token can be
        │                                                 bad; ``reason`` says which (audit log)
        ├── SigningKeyError        500 signing_key_error  no usable signing key, a key that does
        │                                                 not match its kid or algorithm
        └── KeySetUnavailable      503 jwks_unavailable   (resource servers, bastion.sdk) the JWK
                                                          Set or the session status cannot be
                                                          fetched from Bastion: fail closed

Fail closed and opaque: an expired token, a forged one and a garbled one raise the same
:class:`InvalidToken` with the same message, status and headers. Telling the client which check
failed would help an attacker probe the verifier (is this kid known? is my signature close?).
The precise :class:`InvalidTokenReason` is kept on the exception for the audit log.
"""

from __future__ import annotations

import enum

from bastion.errors import BastionError

__all__ = [
    "InvalidToken",
    "InvalidTokenReason",
    "KeySetUnavailable",
    "SigningKeyError",
    "TokenError",
]


class TokenError(BastionError):
    code = "token_error"
    status = 400
    title = "Token error"


class InvalidTokenReason(enum.StrEnum):
    """Why a token was refused (recorded, never shown)."""

    MALFORMED = "malformed"
    FORBIDDEN_HEADER = "forbidden_header"
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    WRONG_TYPE = "wrong_type"
    MISSING_KID = "missing_kid"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    INVALID_CLAIM = "invalid_claim"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    ISSUED_IN_FUTURE = "issued_in_future"
    #: The signature and claims are fine, but the session the token belongs to has ended.
    SESSION_REVOKED = "session_revoked"
    #: The session reached its idle or absolute lifetime.
    SESSION_EXPIRED = "session_expired"
    #: An opaque (refresh) token that was never issued.
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105 - a reason, not a secret
    #: An already rotated refresh token presented again (the session is revoked).
    REUSED = "reused"


class InvalidToken(TokenError):
    code = "invalid_token"
    status = 401
    title = "The access token is invalid"

    def __init__(self, reason: InvalidTokenReason) -> None:
        super().__init__()
        #: The precise failure, for the audit log only.
        self.reason = reason
        # RFC 6750 §3: a 401 for a bearer token names the scheme and the error code.
        self.headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class SigningKeyError(TokenError):
    code = "signing_key_error"
    status = 500
    title = "Internal error"


class KeySetUnavailable(TokenError):
    """A resource server cannot reach Bastion for keys or a session check: refuse, don't guess."""

    code = "jwks_unavailable"
    status = 503
    expose = True
    title = "Token verification is temporarily unavailable; retry shortly"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": "5"}
