"""Build an :class:`AuditEvent` from an ASGI scope: who, from where, in which request.

The client IP and request id are the ones the HTTP core decided (``scope["state"]``, set by the
proxy and request-id middleware), never raw forwarding headers an attacker can write.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from time import time_ns
from typing import Any

from bastion.audit.capture import MAX_REQUEST_ID_CHARS, MAX_USER_AGENT_CHARS, Captured
from bastion.audit.events import AuditEvent, EventType, Outcome, UnfrozenEvent
from bastion.audit.interfaces import AuditRecorder
from bastion.audit.recorder import QueueAuditRecorder, ScrubbedDetails, scrub, scrub_mapping
from bastion.clock import Clock, SystemClock

__all__ = [
    "MAX_REQUEST_ID_CHARS",
    "MAX_USER_AGENT_CHARS",
    "event_from_scope",
    "record_from_scope",
]


def _client_ip(scope: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
    ip = state.get("client_ip")
    if ip:
        return str(ip)
    client = scope.get("client")
    return str(client[0]) if client else None


def _cut(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value else None


#: ``type`` itself: event_from_scope's parameter of that name mirrors AuditEvent.type.
_kind = type
_new = object.__new__


def event_from_scope(
    scope: Mapping[str, Any],
    type: EventType,  # noqa: A002 - mirrors AuditEvent.type
    outcome: Outcome,
    *,
    actor: str | None = None,
    subject: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
) -> AuditEvent:
    """An event stamped with the request's client IP, user agent and request id."""
    # Runs on the request path: the common cases (text already within its bound, the system
    # clock, a dict of details) without a call each; the result is that of the helpers above,
    # and the event equals ``AuditEvent(...)`` of the same fields (built as an UnfrozenEvent,
    # then given AuditEvent's class: a fifth of the constructor's cost).
    state = scope.get("state") or {}
    ip = state.get("client_ip")
    client_ip = (ip if _kind(ip) is str else str(ip)) if ip else _client_ip(scope, state)
    request_id = state.get("request_id")
    if _kind(request_id) is not str or len(request_id) > MAX_REQUEST_ID_CHARS:
        request_id = _cut(request_id, MAX_REQUEST_ID_CHARS)
    elif not request_id:
        request_id = None
    user_agent = None
    for key, value in scope.get("headers") or ():
        if key.lower() == b"user-agent":
            user_agent = bytes(value).decode("latin-1")
            if len(user_agent) > MAX_USER_AGENT_CHARS:
                user_agent = user_agent[:MAX_USER_AGENT_CHARS]
            break
    event = _new(UnfrozenEvent)
    event.type = type
    event.outcome = outcome
    event.time = datetime.now(UTC) if clock is None else clock.now()  # as SystemClock
    event.actor = actor
    event.subject = subject
    event.client_ip = client_ip
    event.user_agent = user_agent or None
    event.request_id = request_id
    event.reason = reason
    # A scrubbed read-only copy: the recorder queues this very event without copying again.
    if not details:
        event.details = ScrubbedDetails()
    elif _kind(details) is dict:
        event.details = ScrubbedDetails(scrub_mapping(details))
    else:
        event.details = scrub(details)
    event.__class__ = AuditEvent  # type: ignore[assignment]
    return event  # type: ignore[return-value]


_USER_AGENT = b"user-agent"


def record_from_scope(
    recorder: AuditRecorder,
    scope: Mapping[str, Any],
    type: EventType,  # noqa: A002 - mirrors AuditEvent.type
    outcome: Outcome,
    *,
    actor: str | None = None,
    subject: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    clock: Clock | None = None,
) -> None:
    """``recorder.record(event_from_scope(scope, type, outcome, ...))``, with less work inside the
    request: for Bastion's own :class:`QueueAuditRecorder`, only what must be taken now (the time,
    the request's fields, a scrubbed copy of the details) is queued (a
    :data:`~bastion.audit.capture.Captured`), and the writer builds the same event after the
    response (:func:`bastion.audit.capture.event_of`). Any other recorder gets the event itself.
    Never raises (as ``record``).
    """
    if _kind(recorder) is not QueueAuditRecorder:  # a test double, a wrapper, a subclass
        recorder.record(
            event_from_scope(
                scope,
                type,
                outcome,
                actor=actor,
                subject=subject,
                reason=reason,
                details=details,
                clock=clock,
            )
        )
        return
    try:
        # The system clock's nanoseconds: the writer makes the datetime (see capture.event_of).
        when = time_ns() if clock is None or _kind(clock) is SystemClock else clock.now()
        state = scope.get("state") or {}
        ip = state.get("client_ip")
        client_ip = (ip if _kind(ip) is str else str(ip)) if ip else _client_ip(scope, state)
        request_id = state.get("request_id")
        if request_id is not None and _kind(request_id) is not str:
            request_id = _cut(request_id, MAX_REQUEST_ID_CHARS)  # text now: nothing mutable kept
        agent = None
        for key, value in scope.get("headers") or ():
            if len(key) == 10 and (key == _USER_AGENT or key.lower() == _USER_AGENT):
                agent = value if _kind(value) is bytes else bytes(value)
                break
        # A scrubbed copy made now: what the caller does with its details later changes nothing.
        if not details:
            scrubbed = None
        elif _kind(details) is dict:
            scrubbed = scrub_mapping(details)
        else:
            scrubbed = scrub(details)
        item: Captured = (
            when,
            type,
            outcome,
            actor,
            subject,
            client_ip,
            agent,
            request_id,
            reason,
            scrubbed,
        )
    except Exception:  # noqa: BLE001 - an audit failure must not fail the request
        recorder.drop_invalid()
        return
    recorder.record_captured(item)
