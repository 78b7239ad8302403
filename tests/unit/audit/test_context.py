"""event_from_scope: the client IP, user agent and request id the HTTP core decided."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bastion.audit.context import MAX_USER_AGENT_CHARS, event_from_scope
from bastion.audit.events import EventType, Outcome
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
