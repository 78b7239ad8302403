"""Shared helpers for the monitoring tests: a list recorder, events, alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import StoredEvent
from bastion.monitoring.alerts import Alert, Detector, Severity

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC


class ListRecorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def of(self, type_: EventType) -> list[AuditEvent]:
        return [e for e in self.events if e.type is type_]

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class EventStream:
    """Builds stored events with increasing sequence numbers and times."""

    def __init__(self, start: datetime = T0) -> None:
        self.seq = 0
        self.now = start

    def __call__(
        self,
        type_: EventType,
        *,
        after: timedelta = timedelta(seconds=1),
        outcome: Outcome = Outcome.FAILURE,
        **fields: Any,
    ) -> StoredEvent:
        self.seq += 1
        self.now += after
        return StoredEvent(
            self.seq, AuditEvent(type=type_, outcome=outcome, time=self.now, **fields)
        )


def login_failed(
    stream: EventStream, ip: str, account: str, *, reason: str = "wrong_password", **kw: Any
) -> StoredEvent:
    return stream(
        EventType.IDENTITY_LOGIN_FAILED,
        client_ip=ip,
        reason=reason,
        details={"email_ref": account},
        **kw,
    )


def login_ok(
    stream: EventStream, ip: str, user: str, *, agent: str = "Firefox", **kw: Any
) -> StoredEvent:
    return stream(
        EventType.IDENTITY_LOGIN_SUCCEEDED,
        outcome=Outcome.SUCCESS,
        client_ip=ip,
        actor=f"user:{user}",
        subject=f"user:{user}",
        user_agent=agent,
        **kw,
    )


def an_alert(severity: Severity = Severity.HIGH) -> Alert:
    return Alert(
        Detector.BRUTE_FORCE,
        severity,
        "12 failed logins on one account within 900 s.",
        key="acct",
        time=T0,
        evidence=(3, 4, 5),
        client_ip="203.0.113.9",
        details={"failures": 12},
    )
