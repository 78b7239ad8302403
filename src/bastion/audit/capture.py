"""An event as the request path captures it, and the :class:`AuditEvent` the writer builds.

:func:`bastion.audit.context.record_from_scope` runs inside the request: it takes only what must
be taken at ``record()`` time (the time, the request's client IP, user agent and request id, a
scrubbed copy of the details) into one tuple, a :data:`Captured`, and queues it. The recorder's
writer turns it into the :class:`AuditEvent` that ``event_from_scope`` would have made at the
same instant (:func:`event_of`), after the response: the datetime, the text of the user agent,
the request id's bound, the read-only details and the event object itself cost the request
nothing.

What a capture holds is immutable or its own: the time as nanoseconds since the epoch
(``time.time_ns()``: the system clock ``datetime.now(UTC)`` reads, floored to microseconds alike)
or the datetime a test clock gave; text; the user agent's bytes; the details as a fresh scrubbed
dict no one else references (a non-``dict`` mapping: already a :class:`ScrubbedDetails`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bastion.audit.events import AuditEvent, EventType, Outcome, UnfrozenEvent
from bastion.audit.scrub import ScrubbedDetails

__all__ = ["MAX_REQUEST_ID_CHARS", "MAX_USER_AGENT_CHARS", "Captured", "event_of"]

#: Client-supplied text is cut to bounded sizes before it is stored (storage exhaustion).
MAX_USER_AGENT_CHARS = 512
MAX_REQUEST_ID_CHARS = 128

#: ``(time, type, outcome, actor, subject, client_ip, user_agent, request_id, reason, details)``:
#: ``time`` is nanoseconds since the epoch (the system clock) or a datetime (another clock);
#: ``user_agent`` the header's bytes, not yet cut; ``request_id`` text not yet cut; ``details``
#: None (none given), a scrubbed ``dict`` nothing else references, or a ``ScrubbedDetails``.
Captured = tuple[
    int | datetime,
    EventType,
    Outcome,
    str | None,
    str | None,
    str | None,
    bytes | None,
    str | None,
    str | None,
    dict[str, Any] | None,
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_new = object.__new__
_kind = type


def event_of(item: Captured) -> AuditEvent:
    """The :class:`AuditEvent` of a capture: the one ``event_from_scope`` returns for the same
    request, details and instant (``tests/unit/audit/test_capture.py``)."""
    when, type_, outcome, actor, subject, client_ip, agent, request_id, reason, details = item
    event = _new(UnfrozenEvent)  # as event_from_scope builds it (see UnfrozenEvent)
    event.type = type_
    event.outcome = outcome
    # datetime.now(UTC) floors the system clock's nanoseconds to microseconds: so does this
    # (a timedelta times an integer: half the cost of timedelta's keyword constructor).
    event.time = _EPOCH + _MICROSECOND * (when // 1000) if isinstance(when, int) else when
    event.actor = actor
    event.subject = subject
    event.client_ip = client_ip
    # Latin-1 is one byte a character: cutting the bytes cuts the text at the same place.
    event.user_agent = agent[:MAX_USER_AGENT_CHARS].decode("latin-1") or None if agent else None
    event.request_id = request_id[:MAX_REQUEST_ID_CHARS] if request_id else None
    event.reason = reason
    if details is None:
        event.details = ScrubbedDetails()
    elif _kind(details) is ScrubbedDetails:
        event.details = details
    else:
        event.details = ScrubbedDetails(details)
    event.__class__ = AuditEvent  # type: ignore[assignment]
    return event  # type: ignore[return-value]
