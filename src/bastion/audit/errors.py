"""Errors of the audit package.

    BastionError
    └── AuditError                   500 audit_error
        └── AuditWriteFailed         500 audit_write_failed   (a sink could not persist a batch)

The recorder catches these (and any other sink failure), retries, then counts and logs the
events it could not write; they never reach a request handler.
"""

from __future__ import annotations

from bastion.errors import BastionError


class AuditError(BastionError):
    code = "audit_error"
    status = 500
    title = "Audit error"


class AuditWriteFailed(AuditError):
    code = "audit_write_failed"
    title = "An audit sink could not write its events"
