"""Errors of multi-factor authentication.

    BastionError
    └── IdentityError
        └── MfaError                     400 mfa_error
            ├── InvalidMfaCode           401 mfa_code_invalid         wrong, reused or expired
            │                                                         TOTP or recovery code
            ├── InvalidChallenge         401 mfa_challenge_invalid    login challenge unknown,
            │                                                         expired, used or voided
            ├── SecondFactorRequired     401 mfa_required             the password was right;
            │                                                         complete the challenge
            │                                                         (POST /v1/sessions answers
            │                                                         202 with it instead)
            ├── StepUpRequired           401 step_up_required         the operation needs a
            │                                                         fresher (or stronger)
            │                                                         authentication
            ├── MfaEnrollmentRequired    403 mfa_enrollment_required  the policy requires a
            │                                                         second factor first
            ├── FactorAlreadyEnrolled    409 mfa_already_enrolled     TOTP is active already
            ├── NoPendingEnrollment      409 mfa_not_pending          nothing to activate
            └── NoFactor                 409 mfa_not_enrolled         no such active factor

Every wrong code answers the same ``mfa_code_invalid`` whatever the defect (wrong digits,
replayed code, spent recovery code): the precise reason goes to the audit trail only.
"""

from __future__ import annotations

from typing import Any

from bastion.identity.errors import IdentityError

__all__ = [
    "FactorAlreadyEnrolled",
    "InvalidChallenge",
    "InvalidMfaCode",
    "MfaEnrollmentRequired",
    "MfaError",
    "NoFactor",
    "NoPendingEnrollment",
    "SecondFactorRequired",
    "StepUpRequired",
]

_BEARER = 'Bearer realm="bastion"'


class MfaError(IdentityError):
    code = "mfa_error"
    status = 400
    title = "Multi-factor authentication error"


class InvalidMfaCode(MfaError):
    code = "mfa_code_invalid"
    status = 401
    title = "The code is invalid or was already used"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": _BEARER}


class InvalidChallenge(MfaError):
    code = "mfa_challenge_invalid"
    status = 401
    title = "The login challenge is invalid, expired or already used; log in again"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.headers = {"WWW-Authenticate": _BEARER}


class SecondFactorRequired(MfaError):
    """Raised by the password login of an account with a second factor. The login route turns
    it into a 202 answer carrying ``challenge_token``; anywhere else it is a plain 401 (the
    challenge is never put in a problem body)."""

    code = "mfa_required"
    status = 401
    title = "A second factor is required to complete the login"

    def __init__(self, *, challenge_token: str, expires_in: int, methods: list[str]) -> None:
        super().__init__()
        self.challenge_token = challenge_token
        self.expires_in = expires_in
        self.methods = methods
        self.headers = {"WWW-Authenticate": _BEARER}


class StepUpRequired(MfaError):
    """RFC 9470 (OAuth 2.0 Step Up Authentication Challenge): the body and the
    ``WWW-Authenticate`` header say what would satisfy the operation."""

    code = "step_up_required"
    status = 401
    title = "This operation needs a recent authentication; re-authenticate first"

    def __init__(
        self, *, acr: str, max_age: int, methods: list[str], endpoint: str, reason: str
    ) -> None:
        super().__init__()
        self.reason = reason
        self.extra: dict[str, Any] = {
            "acr_values": acr,
            "max_age": max_age,
            "methods": methods,
            "step_up_endpoint": endpoint,
        }
        self.headers = {
            "WWW-Authenticate": (
                'Bearer realm="bastion", error="insufficient_user_authentication", '
                f'acr_values="{acr}", max_age={max_age}'
            )
        }


class MfaEnrollmentRequired(MfaError):
    code = "mfa_enrollment_required"
    status = 403
    title = "Enroll a second factor first (POST /v1/account/mfa/totp)"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.extra: dict[str, Any] = {"enroll_endpoint": "/v1/account/mfa/totp"}


class FactorAlreadyEnrolled(MfaError):
    code = "mfa_already_enrolled"
    status = 409
    title = "An authenticator app is already active; remove it first"


class NoPendingEnrollment(MfaError):
    code = "mfa_not_pending"
    status = 409
    title = "There is no pending authenticator enrollment to activate"


class NoFactor(MfaError):
    code = "mfa_not_enrolled"
    status = 409
    title = "There is no such active factor"
