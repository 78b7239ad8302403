"""Build an :class:`AuditEvent` from an ASGI scope: who, from where, in which request.

The client IP and request id are the ones the HTTP core decided (``scope["state"]``, set by the
proxy and request-id middleware), never raw forwarding headers an attacker can write.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bastion.audit.events import AuditEvent, EventType, Outcome, UnfrozenEvent
from bastion.audit.recorder import ScrubbedDetails, scrub, scrub_mapping
from bastion.clock import Clock

#: Client-supplied text is cut to bounded sizes before it is stored (storage exhaustion).
MAX_USER_AGENT_CHARS = 512
MAX_REQUEST_ID_CHARS = 128


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
