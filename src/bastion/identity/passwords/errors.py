"""Errors of the password domain.

    BastionError
    └── PasswordError                    400 password_error
        ├── PasswordTooLong              422 password_too_long         over the byte cap, refused
        │                                                              before any hashing (DoS)
        ├── HashingOverloaded            503 overloaded                the hashing pool and its
        │                                                              wait queue are full
        ├── BreachCheckUnavailable       503 breach_check_unavailable  the breach corpus cannot be
        │                                                              queried (network, status)
        └── InvalidStoredHash            500 invalid_stored_hash       a stored hash in no known
                                                                       format, or with parameters
                                                                       beyond the safety caps

A wrong password is not an error: :meth:`PasswordHasher.verify` returns a result with
``ok=False``. A password the policy refuses is not an error either: the policy returns a
``Rejected`` decision with its reasons.
"""

from __future__ import annotations

from bastion.errors import BastionError

__all__ = [
    "RETRY_AFTER_SECONDS",
    "BreachCheckUnavailable",
    "HashingOverloaded",
    "InvalidStoredHash",
    "PasswordError",
    "PasswordTooLong",
]

#: What an overloaded answer asks the client to wait; a hash takes well under a second.
RETRY_AFTER_SECONDS = 1


class PasswordError(BastionError):
    code = "password_error"
    status = 400
    title = "Password error"


class PasswordTooLong(PasswordError):
    code = "password_too_long"
    status = 422
    title = "The password is too long"


class HashingOverloaded(PasswordError):
    """Every hashing slot and every wait slot is taken: shed load instead of queueing.

    Carries ``headers`` with ``Retry-After`` (the HTTP error handler adds them to the answer),
    like :class:`bastion.protections.ratelimit.errors.Overloaded`.
    """

    code = "overloaded"
    status = 503
    expose = True
    title = "The service is overloaded; retry shortly"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = RETRY_AFTER_SECONDS
        self.headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}


class BreachCheckUnavailable(PasswordError):
    code = "breach_check_unavailable"
    status = 503
    expose = True
    title = "The password breach check is unavailable; retry shortly"


class InvalidStoredHash(PasswordError):
    """A stored password hash cannot be verified: a data problem, never the client's fault."""

    code = "invalid_stored_hash"
    status = 500
    title = "Internal error"
