"""Build an :class:`AuditEvent` from an ASGI scope: who, from where, in which request.

The client IP and request id are the ones the HTTP core decided (``scope["state"]``, set by the
proxy and request-id middleware), never raw forwarding headers an attacker can write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.recorder import scrub
from bastion.clock import Clock, SystemClock

#: Client-supplied text is cut to bounded sizes before it is stored (storage exhaustion).
MAX_USER_AGENT_CHARS = 512
MAX_REQUEST_ID_CHARS = 128

_SYSTEM_CLOCK = SystemClock()


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _client_ip(scope: Mapping[str, Any], state: Mapping[str, Any]) -> str | None:
    ip = state.get("client_ip")
    if ip:
        return str(ip)
    client = scope.get("client")
    return str(client[0]) if client else None


def _cut(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value else None


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
    state = scope.get("state") or {}
    return AuditEvent(
        type=type,
        outcome=outcome,
        time=(clock or _SYSTEM_CLOCK).now(),
        actor=actor,
        subject=subject,
        client_ip=_client_ip(scope, state),
        user_agent=_cut(_header(scope, b"user-agent"), MAX_USER_AGENT_CHARS),
        request_id=_cut(state.get("request_id"), MAX_REQUEST_ID_CHARS),
        reason=reason,
        # A scrubbed read-only copy: the recorder queues this very event without copying again.
        details=scrub(details or {}),
    )
