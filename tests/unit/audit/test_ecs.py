"""ECS mapping: field names and allowed values a SIEM expects."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bastion.audit.chain import utc_stamp
from bastion.audit.ecs import FIELDS, category, ecs_members, to_ecs
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.recorder import scrub, with_details

#: ECS 8.x allowed values of event.category and event.type.
ECS_CATEGORIES = {
    "api", "authentication", "configuration", "database", "driver", "email", "file", "host",
    "iam", "intrusion_detection", "library", "malware", "network", "package", "process",
    "registry", "session", "threat", "vulnerability", "web",
}  # fmt: skip
ECS_TYPES = {
    "access", "admin", "allowed", "change", "connection", "creation", "deletion", "denied", "end",
    "error", "group", "indicator", "info", "installation", "protocol", "start", "user",
}  # fmt: skip


def test_a_full_event() -> None:
    event = AuditEvent(
        type=EventType.HTTP_REQUEST_REJECTED,
        outcome=Outcome.FAILURE,
        time=datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=1))),
        actor="42",
        subject="session:abc",
        client_ip="203.0.113.7",
        user_agent="curl/8.0",
        request_id="req-1",
        reason="body_too_large",
        details={"limit": 1024},
    )
    assert to_ecs(event) == {
        "@timestamp": "2026-03-01T11:00:00.250000Z",
        "ecs.version": "8.11.0",
        "event.kind": "event",
        "event.dataset": "bastion.audit",
        "event.action": "http:request:rejected",
        "event.category": ["web"],
        "event.type": ["denied"],
        "event.outcome": "failure",
        "event.reason": "body_too_large",
        "user.id": "42",
        "labels.subject": "session:abc",
        "source.ip": "203.0.113.7",
        "user_agent.original": "curl/8.0",
        "http.request.id": "req-1",
        "related.ip": ["203.0.113.7"],
        "related.user": ["42"],
        "bastion.details": {"limit": 1024},
    }


def test_a_user_subject_is_the_target_user() -> None:
    event = AuditEvent(
        type=EventType.SYSTEM_SETUP_TOKEN_CONSUMED,
        outcome=Outcome.SUCCESS,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        actor="7",
        subject="user:9",
    )
    fields = to_ecs(event)
    assert fields["user.target.id"] == "9"
    assert "labels.subject" not in fields
    assert fields["related.user"] == ["7", "9"]
    assert fields["event.category"] == ["iam"]
    assert fields["event.type"] == ["access"]


def test_empty_fields_are_left_out() -> None:
    event = AuditEvent(
        type=EventType.SYSTEM_SERVICE_STARTED,
        outcome=Outcome.SUCCESS,
        time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert set(to_ecs(event)) == {
        "@timestamp", "ecs.version", "event.kind", "event.dataset", "event.action",
        "event.category", "event.type", "event.outcome",
    }  # fmt: skip


@pytest.mark.parametrize("event_type", list(EventType))
def test_every_event_type_maps_to_allowed_ecs_values(event_type: EventType) -> None:
    # A new event source must be given an ECS category here, or this test names it.
    assert category(event_type) in ECS_CATEGORIES
    for outcome in Outcome:
        fields = to_ecs(AuditEvent(type=event_type, outcome=outcome, time=datetime.now(UTC)))
        assert set(fields["event.type"]) <= ECS_TYPES
        assert fields["event.outcome"] in {"success", "failure", "unknown"}


def _events() -> list[AuditEvent]:
    """Events covering every optional field, subject kind and value type the line can hold."""
    t0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    events = []
    for n, event_type in enumerate(EventType):
        events.append(
            AuditEvent(
                type=event_type,
                outcome=list(Outcome)[n % 3],
                time=t0 if n % 2 else t0.replace(microsecond=0),
                actor=[None, "", "42", "user:7", "ünïcode\u2028"][n % 5],
                subject=[None, "", "user:7", "user:", "session:abc", 'quote"back\\'][n % 6],
                client_ip=[None, "", "2001:db8::1"][n % 3],
                user_agent=[None, "curl/8.0", "line\nbreak\x00"][n % 3],
                request_id=[None, "req-1"][n % 2],
                reason=[None, "", "body_too_large"][n % 3],
                details=[{}, {"limit": 1024}, {"a": [1, 2.5, None, True], "b": {"c": "é"}}][n % 3],
            )
        )
    return events


@pytest.mark.parametrize("event", _events(), ids=lambda e: e.type.value)
def test_ecs_members_write_exactly_the_json_of_the_document(event: AuditEvent) -> None:
    # The audit log line is written from these members: they must be the very bytes the JSON
    # log renderer writes for to_ecs()'s document (same fields, order, escaping).
    assert "{" + ecs_members(event) + "}" == json.dumps(to_ecs(event))


def test_fields_lists_every_field_in_order() -> None:
    for event in _events():
        names = list(to_ecs(event))
        assert names == [name for name in FIELDS if name in names]


@pytest.mark.parametrize(
    ("actor", "subject"),
    [
        ("7", "user:7"),
        ("7", "user:8"),
        ("7", "user:"),
        ("", "user:7"),
        (None, "user:7"),
        ("7", None),
    ],
)
def test_related_users_are_written_once_each(actor: str | None, subject: str | None) -> None:
    # The line writes related.user itself: the actor and the target user, without a duplicate.
    event = AuditEvent(
        type=EventType.IDENTITY_PROFILE_UPDATED,
        outcome=Outcome.SUCCESS,
        time=datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC),
        actor=actor,
        subject=subject,
    )
    assert "{" + ecs_members(event) + "}" == json.dumps(to_ecs(event))


_TIMES = (
    datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
    datetime(2026, 3, 1, 1, 0, 0, 7, tzinfo=timezone(timedelta(hours=5))),
    datetime(2026, 3, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-5))),
    datetime(999, 12, 31, 23, 0, 0, 1, tzinfo=UTC),
    datetime(1000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
)


@pytest.mark.parametrize("time", _TIMES, ids=str)
@pytest.mark.parametrize("event", _events()[:6], ids=lambda e: e.type.value)
def test_ecs_members_from_the_chain_stamp_and_the_column_json(
    event: AuditEvent, time: datetime
) -> None:
    # The log sink passes the chain's UTC stamp and the JSON column's text (json.dumps of the
    # scrubbed details) when the database sink made them: the line must not change.
    event = with_details(replace(event, time=time), scrub(event.details))
    line = ecs_members(event, utc_stamp(time), json.dumps(event.details))
    assert "{" + line + "}" == json.dumps(to_ecs(event))
