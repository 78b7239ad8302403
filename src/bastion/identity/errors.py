"""Errors of the identity domain.

    BastionError
    └── IdentityError                400 identity_error
        ├── InvalidSetupToken        400 setup_token_invalid   bad, expired or used setup token
        ├── InvalidAccountToken      400 token_invalid         bad, expired or used email
        │                                                      verification / password reset token
        ├── InvalidCredentials       401 invalid_credentials   wrong email or password (or a
        │                                                      disabled, unverified or unknown
        │                                                      account: one answer for all)
        ├── CsrfFailed               403 csrf_failed           a cookie-authenticated unsafe request
        │                                                      without a valid CSRF token, or from
        │                                                      another site
        ├── AccountExists            409 account_exists        setup only (after a valid setup
        │                                                      token): the address has an account
        └── PasswordRejected         422 password_rejected     the new password fails the policy

Errors of sub-domains: :mod:`bastion.identity.passwords.errors`,
:mod:`bastion.identity.tokens.errors` (``invalid_token``), :mod:`bastion.identity.mail.errors`.
Backoff and lockout answers are :class:`bastion.protections.ratelimit.errors.TooManyAttempts`
(429 ``too_many_attempts``).

Every way a token or a credential can be bad raises one opaque error: a caller probing tokens or
accounts learns nothing. The precise reason goes to the audit trail.

Why 400 for setup and account tokens and not 401: the token travels in the request body, not in
an HTTP authentication scheme, and a 401 must carry a ``WWW-Authenticate`` challenge
(RFC 9110 §15.5.2) that would name a scheme that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bastion.errors import BastionError


class IdentityError(BastionError):
    code = "identity_error"
    status = 400
    title = "Identity error"


class InvalidSetupToken(IdentityError):
    code = "setup_token_invalid"
    status = 400
    title = "The setup token is invalid, expired or already used"


class InvalidAccountToken(IdentityError):
    code = "token_invalid"
    status = 400
    title = "The token is invalid, expired or already used"


class InvalidCredentials(IdentityError):
    code = "invalid_credentials"
    status = 401
    title = "The email address or password is incorrect"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        # RFC 9110 §15.5.2: a 401 names a scheme; clients then use the bearer tokens it returns.
        self.headers = {"WWW-Authenticate": 'Bearer realm="bastion"'}


class CsrfFailed(IdentityError):
    code = "csrf_failed"
    status = 403
    title = "Cross-site request refused: a valid CSRF token is required"


class AccountExists(IdentityError):
    """Only answered to the holder of a valid setup token (the operator): registration and
    every other public flow answer alike for taken and free addresses."""

    code = "account_exists"
    status = 409
    title = "An account with this email address exists"


class PasswordRejected(IdentityError):
    """The password policy refused a new password; ``reasons`` lists why (stable values)."""

    code = "password_rejected"
    status = 422
    title = "The password does not meet the password policy"

    def __init__(self, message: str, reasons: Sequence[str]) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)
        #: Extension members of the problem body.
        self.extra: dict[str, Any] = {"reasons": list(self.reasons)}
