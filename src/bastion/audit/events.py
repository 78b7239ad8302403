"""The security event vocabulary: event types with the grammar ``source:subject:action``.

Every audit event Bastion records has one of these types; no string literals elsewhere.
`docs/audit-events.md` is generated from this enum.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class EventType(enum.StrEnum):
    """Audit event types: ``source:subject:action``."""

    HTTP_REQUEST_REJECTED = "http:request:rejected"
    HTTP_REQUEST_FAILED = "http:request:failed"
    SYSTEM_SERVICE_STARTED = "system:service:started"
    SYSTEM_SERVICE_STOPPED = "system:service:stopped"
    SYSTEM_SETUP_TOKEN_ISSUED = "system:setup_token:issued"  # noqa: S105 - an event name
    SYSTEM_SETUP_TOKEN_CONSUMED = "system:setup_token:consumed"  # noqa: S105 - an event name
    SYSTEM_SETUP_TOKEN_REJECTED = "system:setup_token:rejected"  # noqa: S105 - an event name
    AUDIT_QUEUE_OVERFLOWED = "audit:queue:overflowed"
    RATELIMIT_LIMIT_EXCEEDED = "protections:ratelimit:exceeded"
    HTTP_CSRF_REJECTED = "http:csrf:rejected"
    # -- identity: accounts ----------------------------------------------------------------
    IDENTITY_SETUP_COMPLETED = "identity:setup:completed"
    IDENTITY_ACCOUNT_REGISTERED = "identity:account:registered"
    IDENTITY_ACCOUNT_REGISTRATION_REPEATED = "identity:account:registration_repeated"
    IDENTITY_ACCOUNT_LOCKED = "identity:account:locked"
    IDENTITY_ACCOUNT_UNLOCKED = "identity:account:unlocked"
    IDENTITY_ACCOUNT_DISABLED = "identity:account:disabled"
    IDENTITY_ACCOUNT_ENABLED = "identity:account:enabled"
    IDENTITY_PROFILE_UPDATED = "identity:profile:updated"
    IDENTITY_EMAIL_VERIFIED = "identity:email:verified"
    IDENTITY_EMAIL_CHANGE_REQUESTED = "identity:email:change_requested"
    IDENTITY_EMAIL_CHANGED = "identity:email:changed"
    IDENTITY_ACCOUNT_TOKEN_REJECTED = "identity:account_token:rejected"  # noqa: S105 - a name
    # -- identity: passwords ---------------------------------------------------------------
    IDENTITY_PASSWORD_CHANGED = "identity:password:changed"  # noqa: S105 - an event name
    IDENTITY_PASSWORD_CHANGE_FAILED = "identity:password:change_failed"  # noqa: S105
    IDENTITY_PASSWORD_RESET_REQUESTED = "identity:password:reset_requested"  # noqa: S105
    IDENTITY_PASSWORD_RESET = "identity:password:reset"  # noqa: S105 - an event name
    IDENTITY_PASSWORD_RESET_FORCED = "identity:password:reset_forced"  # noqa: S105
    IDENTITY_PASSWORD_REHASHED = "identity:password:rehashed"  # noqa: S105 - an event name
    # -- identity: login and sessions ------------------------------------------------------
    IDENTITY_LOGIN_SUCCEEDED = "identity:login:succeeded"
    IDENTITY_LOGIN_FAILED = "identity:login:failed"
    IDENTITY_LOGIN_THROTTLED = "identity:login:throttled"
    IDENTITY_SESSION_REVOKED = "identity:session:revoked"
    # -- tokens ----------------------------------------------------------------------------
    TOKEN_ACCESS_REJECTED = "token:access:rejected"  # noqa: S105 - an event name
    TOKEN_REFRESH_REJECTED = "token:refresh:rejected"  # noqa: S105 - an event name
    TOKEN_REFRESH_REUSE_DETECTED = "token:refresh:reuse_detected"  # noqa: S105 - an event name
    TOKEN_SIGNING_KEY_CREATED = "token:signing_key:created"  # noqa: S105 - an event name
    TOKEN_SIGNING_KEY_ROTATED = "token:signing_key:rotated"  # noqa: S105 - an event name
    # -- mail ------------------------------------------------------------------------------
    MAIL_DELIVERY_FAILED = "mail:delivery:failed"

    @property
    def source(self) -> str:
        return self.value.split(":", 1)[0]


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One security event. ``details`` must never hold secrets (the recorder scrubs known keys)."""

    type: EventType
    outcome: Outcome
    time: datetime
    actor: str | None = None
    subject: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
