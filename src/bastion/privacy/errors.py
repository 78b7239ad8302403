"""Errors of the privacy domain.

BastionError
└── PrivacyError
    └── AccountNotFound   404 ``not_found``: no such account, or it was already erased
"""

from __future__ import annotations

from bastion.errors import BastionError

__all__ = ["AccountNotFound", "LastAdministrator", "PrivacyError"]


class PrivacyError(BastionError):
    code = "privacy_error"


class AccountNotFound(PrivacyError):
    # The same code and title as any unknown resource: an erased account is not told apart
    # from one that never existed.
    code = "not_found"
    status = 404
    title = "Not found"


class LastAdministrator(PrivacyError):
    # Erasing the only permanent administrator would lock everyone out of administration: the
    # setup token works once. Another administrator must be granted the role first.
    code = "last_administrator"
    status = 409
    title = "The last administrator cannot be erased"
