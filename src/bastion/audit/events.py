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
