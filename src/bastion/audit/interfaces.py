"""Seams of the audit package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol

from bastion.audit.events import AuditEvent


class AuditRecorder(Protocol):
    """Accepts events from request handlers without blocking them.

    ``record`` never awaits and never raises: the event goes into a bounded queue; when the queue is
    full the event is counted, logged and exported as a metric (never dropped silently).
    ``start`` launches the background writer; ``aclose`` flushes every queued event, then stops.
    """

    def record(self, event: AuditEvent) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class AuditSink(Protocol):
    """Persists a batch of events (database, log line, ...).

    Raises on failure; the recorder retries with backoff.
    """

    async def write(self, events: Sequence[AuditEvent]) -> None: ...


@dataclass(frozen=True, slots=True, init=False)
class StoredEvent:
    """An event as committed to the chain: ``seq`` is its position, unique and stable (the id
    to cite as evidence; ``bastion audit verify`` and the query API name events by it)."""

    seq: int
    event: AuditEvent

    def __init__(self, seq: int, event: AuditEvent) -> None:
        # The generated __init__ of a frozen dataclass, through the slots' own setters (one
        # StoredEvent per stored event, for the subscribers: see AuditEvent.__init__).
        _SET_SEQ(self, seq)
        _SET_EVENT(self, event)


_SET_SEQ, _SET_EVENT = (vars(StoredEvent)[item.name].__set__ for item in fields(StoredEvent))


class AuditSubscriber(Protocol):
    """Receives every batch of events after it is durably stored and chained.

    Register with ``DatabaseSink.subscribe`` (``services.audit_log.subscribe``). ``on_stored``
    runs in the recorder's writer task, in chain order, once per committed batch: it must return
    quickly (hand slow work to a task or queue of its own) and should not raise (an exception is
    logged by class name and ignored; it never fails the trail). A subscriber may declare
    ``event_types`` (a collection of :class:`~bastion.audit.events.EventType`) when it looks at
    no others: the sink then need not build or hand out the rest (see ``DatabaseSink.subscribe``).
    """

    def on_stored(self, events: Sequence[StoredEvent]) -> None: ...
