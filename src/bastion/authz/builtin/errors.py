"""Errors of just-in-time elevation, each a problem+json answer with a stable code.

BastionError
└── ElevationError                    400 elevation_error (abstract)
    ├── ElevationNotFound             404 elevation_not_found
    ├── SelfApproval                  403 elevation_self_approval
    ├── ElevationNotPending           409 elevation_not_pending
    ├── RoleAlreadyHeld               409 elevation_role_held
    ├── TooManyPending                409 elevation_too_many_pending
    └── DurationTooLong               422 elevation_duration_too_long
"""

from __future__ import annotations

from bastion.errors import BastionError

__all__ = [
    "DurationTooLong",
    "ElevationError",
    "ElevationNotFound",
    "ElevationNotPending",
    "RoleAlreadyHeld",
    "SelfApproval",
    "TooManyPending",
]


class ElevationError(BastionError):
    code = "elevation_error"


class ElevationNotFound(ElevationError):
    # Also for a request the caller may not see: ids are not confirmed to strangers.
    code = "elevation_not_found"
    status = 404
    title = "No such elevation request"


class SelfApproval(ElevationError):
    code = "elevation_self_approval"
    status = 403
    title = "An elevation must be approved or denied by another administrator"


class ElevationNotPending(ElevationError):
    code = "elevation_not_pending"
    status = 409
    title = "The elevation request is no longer pending (decided, withdrawn or expired)"


class RoleAlreadyHeld(ElevationError):
    code = "elevation_role_held"
    status = 409
    title = "The user already holds this role"


class TooManyPending(ElevationError):
    code = "elevation_too_many_pending"
    status = 409
    title = "Too many pending elevation requests"


class DurationTooLong(ElevationError):
    code = "elevation_duration_too_long"
    status = 422
    title = "The requested duration exceeds the configured maximum"
