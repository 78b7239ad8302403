"""Errors of the identity domain.

    BastionError
    └── IdentityError                400 identity_error
        └── InvalidSetupToken        400 setup_token_invalid

Every way a setup token can be bad (unknown, expired, superseded, already used, malformed)
raises the same opaque :class:`InvalidSetupToken`: a caller probing tokens learns nothing. The
precise reason goes to the audit event ``system:setup_token:rejected``.

Why 400 and not 401: the token travels in the request body of the setup call, not in an HTTP
authentication scheme, and a 401 must carry a ``WWW-Authenticate`` challenge (RFC 9110 §15.5.2)
that would name a scheme that does not exist.
"""

from __future__ import annotations

from bastion.errors import BastionError


class IdentityError(BastionError):
    code = "identity_error"
    status = 400
    title = "Identity error"


class InvalidSetupToken(IdentityError):
    code = "setup_token_invalid"
    status = 400
    title = "The setup token is invalid, expired or already used"
