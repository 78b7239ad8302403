"""Access-token claims and the vocabulary of how a user authenticated."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = ["AccessTokenClaims", "AssuranceLevel", "AuthMethod"]

#: RFC 9068 §2.1: the JWT "typ" of an access token, so that no other JWT (an ID token, a
#: logout token) signed by the same key can be replayed as one.
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


class AuthMethod(enum.StrEnum):
    """Authentication method references (``amr``), RFC 8176 §2."""

    PASSWORD = "pwd"  # noqa: S105 - an RFC 8176 method name, not a secret
    OTP = "otp"
    MFA = "mfa"
    HARDWARE_KEY = "hwk"
    SOFTWARE_KEY = "swk"
    PIN = "pin"
    SMS = "sms"
    USER_PRESENCE = "user"
    FINGERPRINT = "fpt"
    FACE = "face"
    RISK_BASED = "rba"


class AssuranceLevel(enum.StrEnum):
    """Authentication context class (``acr``): NIST SP 800-63B authenticator assurance."""

    AAL1 = "aal1"
    AAL2 = "aal2"
    AAL3 = "aal3"


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """The verified content of an access token."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    session_id: str
    jti: str
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    amr: tuple[AuthMethod, ...]
    acr: AssuranceLevel
    kid: str
