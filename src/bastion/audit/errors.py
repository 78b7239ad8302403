"""Errors of the audit package.

    BastionError
    └── AuditError                   500 audit_error
        ├── AuditWriteFailed         500 audit_write_failed   (a sink could not persist a batch)
        ├── ChainHeadMissing         500 audit_chain_head_missing (chained events, no head row)
        ├── CheckpointInvalid        400 audit_checkpoint_invalid (a checkpoint file or token
        │                                                        that does not verify)
        └── InvalidCursor            400 invalid_cursor        (a query cursor not made by this
                                                               server for this query)

The recorder catches write failures (and any other sink failure), retries, then counts and logs
the events it could not write; they never reach a request handler. Tampering found by
``bastion audit verify`` is a result (:class:`bastion.audit.verify.ChainProblem`), not an error.
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


class ChainHeadMissing(AuditError):
    code = "audit_chain_head_missing"
    title = "The audit chain head row is missing"


class CheckpointInvalid(AuditError):
    code = "audit_checkpoint_invalid"
    status = 400
    title = "The audit checkpoint does not verify"


class InvalidCursor(AuditError):
    code = "invalid_cursor"
    status = 400
    title = "Invalid cursor"
