"""event_from_scope: the client IP, user agent and request id the HTTP core decided."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bastion.audit.context import MAX_USER_AGENT_CHARS, event_from_scope
from bastion.audit.events import AuditEvent, EventType, Outcome, UnfrozenEvent
from bastion.audit.recorder import ScrubbedDetails
from bastion.clock import FrozenClock


def scope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "client": ("10.0.0.1", 50000),
        "headers": [(b"host", b"example.com"), (b"user-agent", b"Mozilla/5.0")],
        "state": {"client_ip": "203.0.113.7", "request_id": "req-123"},
    }
    base.update(overrides)
    return base


def test_fields_come_from_the_scope_state() -> None:
    clock = FrozenClock(datetime(2026, 5, 1, tzinfo=UTC))
    event = event_from_scope(
        scope(),
        EventType.HTTP_REQUEST_REJECTED,
        Outcome.FAILURE,
        actor="1",
        subject="user:2",
        reason="forbidden",
        details={"path": "/x"},
        clock=clock,
    )
    assert event.time == clock.now()
    assert (event.type, event.outcome) == (EventType.HTTP_REQUEST_REJECTED, Outcome.FAILURE)
    assert (event.actor, event.subject, event.reason) == ("1", "user:2", "forbidden")
    # The proxy middleware's decision, not the TCP peer (a trusted proxy).
    assert event.client_ip == "203.0.113.7"
    assert event.user_agent == "Mozilla/5.0"
    assert event.request_id == "req-123"
    assert event.details == {"path": "/x"}


def test_falls_back_to_the_tcp_peer_without_state() -> None:
    event = event_from_scope(scope(state={}), EventType.HTTP_REQUEST_FAILED, Outcome.FAILURE)
    assert event.client_ip == "10.0.0.1"
    assert event.request_id is None
    assert event.time.tzinfo is not None


def test_missing_client_and_headers() -> None:
    event = event_from_scope({"type": "http"}, EventType.HTTP_REQUEST_FAILED, Outcome.UNKNOWN)
    assert (event.client_ip, event.user_agent, event.request_id) == (None, None, None)
    assert event.details == {}


def test_long_user_agents_are_cut() -> None:
    headers = [(b"User-Agent", b"A" * 10_000)]
    event = event_from_scope(scope(headers=headers), EventType.HTTP_REQUEST_FAILED, Outcome.FAILURE)
    assert event.user_agent == "A" * MAX_USER_AGENT_CHARS


def _reference_cut(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value else None


@pytest.mark.parametrize("ip", ["203.0.113.7", "", None, 42])
@pytest.mark.parametrize("request_id", ["req-1", "", None, "r" * 200, 12345])
@pytest.mark.parametrize("user_agent", [b"curl/8.0", b"", None, b"u" * 600])
def test_the_inlined_fields_are_those_of_the_helpers(
    ip: Any, request_id: Any, user_agent: bytes | None
) -> None:
    # event_from_scope inlines its helpers' common cases: every edge gives what they gave.
    headers = [] if user_agent is None else [(b"user-agent", user_agent)]
    state = {"client_ip": ip, "request_id": request_id}
    event = event_from_scope(
        scope(state=state, headers=headers), EventType.HTTP_REQUEST_REJECTED, Outcome.FAILURE
    )
    assert event.client_ip == (str(ip) if ip else "10.0.0.1")
    assert type(event.client_ip) is str
    assert event.request_id == _reference_cut(request_id, 128)
    agent = None if user_agent is None else user_agent.decode("latin-1")
    assert event.user_agent == _reference_cut(agent, MAX_USER_AGENT_CHARS)
    assert datetime.now(UTC) - event.time < timedelta(seconds=5)
    assert event.time.tzinfo is UTC


def test_a_long_sensitive_detail_key_is_still_redacted() -> None:
    # The key is checked whole, then cut: the credential's name may lie past the cut.
    key = "x" * 1100 + "_password"
    event = event_from_scope(
        scope(), EventType.HTTP_REQUEST_REJECTED, Outcome.FAILURE, details={key: "hunter2"}
    )
    assert list(event.details.values()) == ["[redacted]"]


def test_the_event_is_a_frozen_audit_event_equal_to_the_constructors() -> None:
    # event_from_scope builds an UnfrozenEvent and then gives it AuditEvent's class.
    clock = FrozenClock(datetime(2026, 5, 1, tzinfo=UTC))
    event = event_from_scope(
        scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, actor="a", clock=clock
    )
    assert type(event) is AuditEvent
    expected = AuditEvent(
        EventType.IDENTITY_PROFILE_UPDATED,
        Outcome.SUCCESS,
        clock.now(),
        "a",
        None,
        "203.0.113.7",
        "Mozilla/5.0",
        "req-123",
        None,
        {},
    )
    assert event == expected
    assert repr(event) == repr(expected)
    assert type(event.details) is ScrubbedDetails
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.actor = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):  # as any AuditEvent: the dataclass's frozen __setattr__
        event.__class__ = UnfrozenEvent  # type: ignore[assignment]


def test_changing_the_callers_details_afterwards_changes_nothing() -> None:
    details: dict[str, Any] = {"fields": ["display_name"], "nested": {"k": ["v"]}, "n": 1}
    event = event_from_scope(
        scope(), EventType.IDENTITY_PROFILE_UPDATED, Outcome.SUCCESS, details=details
    )
    details["fields"].append("email")
    details["nested"]["k"].append("w")
    details["nested"]["x"] = 2
    details["n"] = 2
    details["password"] = "hunter2"
    assert event.details == {"fields": ["display_name"], "nested": {"k": ["v"]}, "n": 1}
    assert event.details["fields"] is not details["fields"]
