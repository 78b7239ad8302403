"""Errors of WebAuthn ceremonies (passkeys).

    IdentityError
    └── MfaError (bastion.identity.mfa.errors)
        └── WebAuthnError                400 webauthn_error
            ├── CeremonyInvalid          400 webauthn_ceremony_invalid
            │                                unknown, expired, used, or someone else's ceremony
            ├── RegistrationRejected     400 webauthn_registration_rejected
            │                                the attestation failed verification
            ├── AssertionRejected        401 webauthn_assertion_rejected
            │   │                            the assertion failed verification (any reason)
            │   └── UserVerificationRequired
            │                            401 webauthn_user_verification_required
            │                                a passwordless login without user verification
            └── CredentialLimitReached   409 webauthn_credential_limit
                                             the account has the maximum number of passkeys

They are :class:`MfaError` subclasses, so a passkey refused as a login's second factor is
counted by the MFA service like a wrong code (backoff, challenge failures).

Every defect of a response (origin, RP id, challenge, signature, unknown credential, another
user's credential, a sign count that went backwards) is one opaque error to the client; the
precise :class:`FailureReason` goes to the audit trail (``identity:webauthn:failed``), as for
tokens and passwords: a caller probing credentials learns nothing.
"""

from __future__ import annotations

import enum

from bastion.identity.mfa.errors import MfaError

__all__ = [
    "AssertionRejected",
    "CeremonyInvalid",
    "CredentialLimitReached",
    "FailureReason",
    "RegistrationRejected",
    "UserVerificationRequired",
    "WebAuthnError",
]


class FailureReason(enum.StrEnum):
    """Why a ceremony failed: audit ``reason`` values (stable)."""

    CEREMONY_UNKNOWN = "ceremony_unknown"  # malformed, never issued, expired or already used
    CEREMONY_MISMATCH = "ceremony_mismatch"  # another purpose or another user's ceremony
    MALFORMED = "malformed_response"
    ORIGIN = "origin_mismatch"
    RP_ID = "rp_id_mismatch"
    CHALLENGE = "challenge_mismatch"
    SIGNATURE = "bad_signature"
    VERIFICATION = "verification_failed"  # any other check of the webauthn package
    UNKNOWN_CREDENTIAL = "unknown_credential"
    WRONG_USER = "credential_of_another_user"
    USER_HANDLE = "user_handle_mismatch"
    SIGN_COUNT = "sign_count_regressed"
    USER_VERIFICATION = "user_verification_missing"
    ACCOUNT_UNUSABLE = "account_unusable"  # disabled or unconfirmed
    DUPLICATE = "credential_exists"
    LIMIT = "credential_limit"


class WebAuthnError(MfaError):
    code = "webauthn_error"
    status = 400
    title = "WebAuthn error"

    def __init__(self, reason: FailureReason | None = None, detail: str | None = None) -> None:
        super().__init__(detail)
        #: For the audit trail only; never sent to the client.
        self.reason = reason


class CeremonyInvalid(WebAuthnError):
    code = "webauthn_ceremony_invalid"
    status = 400
    title = "The WebAuthn ceremony is unknown, expired or already used: start again"


class RegistrationRejected(WebAuthnError):
    code = "webauthn_registration_rejected"
    status = 400
    title = "The passkey registration could not be verified"


class AssertionRejected(WebAuthnError):
    code = "webauthn_assertion_rejected"
    status = 401
    title = "The passkey could not be verified"

    def __init__(self, reason: FailureReason | None = None, detail: str | None = None) -> None:
        super().__init__(reason, detail)
        # RFC 9110 §15.5.2: a 401 names a scheme; the tokens this login returns are bearer.
        self.headers = {"WWW-Authenticate": 'Bearer realm="bastion"'}


class UserVerificationRequired(AssertionRejected):
    code = "webauthn_user_verification_required"
    title = "A passkey login needs user verification (PIN or biometric) on the authenticator"


class CredentialLimitReached(WebAuthnError):
    code = "webauthn_credential_limit"
    status = 409
    title = "This account has the maximum number of passkeys: delete one first"
