"""An alert: what a detector concluded, how bad it is, and the events that prove it."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bastion.audit.events import AuditEvent, EventType, Outcome


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


class Detector(enum.StrEnum):
    """The detectors, by name (metric label, webhook payload, audit details)."""

    BRUTE_FORCE = "brute_force"
    CREDENTIAL_STUFFING = "credential_stuffing"
    PASSWORD_SPRAYING = "password_spraying"  # noqa: S105 - a detector name
    REFRESH_TOKEN_REUSE = "refresh_token_reuse"  # noqa: S105 - a detector name
    DENIAL_BURST = "denial_burst"
    ADMIN_OFF_HOURS = "admin_off_hours"
    NEW_DEVICE_LOGIN = "new_device_login"


EVENT_TYPES: dict[Detector, EventType] = {
    Detector.BRUTE_FORCE: EventType.ALERT_BRUTE_FORCE,
    Detector.CREDENTIAL_STUFFING: EventType.ALERT_CREDENTIAL_STUFFING,
    Detector.PASSWORD_SPRAYING: EventType.ALERT_PASSWORD_SPRAYING,
    Detector.REFRESH_TOKEN_REUSE: EventType.ALERT_REFRESH_TOKEN_REUSE,
    Detector.DENIAL_BURST: EventType.ALERT_DENIAL_BURST,
    Detector.ADMIN_OFF_HOURS: EventType.ALERT_ADMIN_OFF_HOURS,
    Detector.NEW_DEVICE_LOGIN: EventType.ALERT_NEW_DEVICE_LOGIN,
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One detection. ``key`` identifies what it is about (an account reference, an IP): the
    same detector does not alert twice on one key within the cooldown. ``evidence`` holds the
    audit chain sequence numbers of the events that triggered it."""

    detector: Detector
    severity: Severity
    summary: str
    key: str
    time: datetime
    evidence: tuple[int, ...]
    subject: str | None = None
    actor: str | None = None
    client_ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def event_type(self) -> EventType:
        return EVENT_TYPES[self.detector]

    def to_event(self) -> AuditEvent:
        return AuditEvent(
            type=self.event_type,
            outcome=Outcome.SUCCESS,
            time=self.time,
            actor=self.actor,
            subject=self.subject,
            client_ip=self.client_ip,
            reason=self.detector.value,
            details={
                "alert_id": self.id,
                "severity": self.severity.value,
                "summary": self.summary,
                "evidence": list(self.evidence),
                **self.details,
            },
        )

    def payload(self) -> dict[str, Any]:
        """The JSON document webhooks receive."""
        return {
            "id": self.id,
            "type": self.event_type.value,
            "detector": self.detector.value,
            "severity": self.severity.value,
            "summary": self.summary,
            "time": self.time.isoformat(),
            "subject": self.subject,
            "actor": self.actor,
            "client_ip": self.client_ip,
            "evidence": list(self.evidence),
            "details": self.details,
        }
