"""The log sink: one ECS JSON line per event, for a SIEM."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from bastion.audit import ecs
from bastion.audit.chain import utc_stamp
from bastion.audit.events import AuditEvent
from bastion.audit.recorder import WRITE_SLICE, Batch, ScrubbedDetails, scrub, with_details
from bastion.audit.sinks._rows import _json_column, _slice_size
from bastion.logging import direct_lines, get_logger

AUDIT_LOGGER = "bastion.audit"
AUDIT_LOG_EVENT = "audit_event"
#: Log lines formatted between two yields to the event loop (a recorder's batch says its own
#: ``slice_size``).
LOG_CHUNK = WRITE_SLICE

_LINE_FIELDS = ("log.logger", *ecs.FIELDS)
_LINE_HEAD = f'"log.logger": "{AUDIT_LOGGER}", '


def _ecs_members(event: AuditEvent, batch: Batch | None, n: int) -> str:
    """``ecs.ecs_members(event)``; with the recorder's ``batch``, from (or sharing) the UTC stamp
    and the details' JSON text of the event at index ``n`` (see :func:`_link`)."""
    if batch is None:
        return ecs.ecs_members(event)
    stamp = batch.stamps[n]
    if stamp is None:
        stamp = batch.stamps[n] = utc_stamp(event.time)
    details = event.details
    text = None
    if details and type(details) is ScrubbedDetails:
        text = batch.details_json[n]
        if text is None:
            text = batch.details_json[n] = _json_column(details)
    return ecs.ecs_members(event, stamp, text)


class LogSink:
    """Writes one ECS JSON log line per event to the ``bastion.audit`` logger.

    Nothing is formatted when the logger drops info lines. The logging configuration is resolved
    once per batch (not per line), so a reconfiguration applies from the next batch; long
    batches yield to the event loop between chunks, so formatting them cannot stall requests.

    With the JSON logging :func:`bastion.logging.configure` sets up, the lines are written
    directly (:func:`bastion.logging.direct_lines`: the same bytes the processor chain would
    write, each chunk in one write); under any other configuration, through structlog. Details
    not scrubbed by the recorder are scrubbed here, so the line never holds more than the row.
    """

    def __init__(self) -> None:
        self._logger = get_logger(AUDIT_LOGGER)

    async def write(self, events: Sequence[AuditEvent]) -> None:
        # Direct lines only when the configuration writes info lines (checked there); else
        # through structlog, formatting nothing when it drops them.
        direct = direct_lines(AUDIT_LOG_EVENT, logging.INFO, _LINE_FIELDS)
        log: Any = None
        if direct is None:
            log = self._logger.bind()
            enabled = getattr(log, "is_enabled_for", None)
            if enabled is not None and not enabled(logging.INFO):
                return
        batch = events if type(events) is Batch else None
        size = _slice_size(events, LOG_CHUNK)
        for start in range(0, len(events), size):
            if start:
                await asyncio.sleep(0)
            chunk = [_scrubbed(event) for event in events[start : start + size]]
            if direct is not None:
                lines = [
                    direct.line(_LINE_HEAD + _ecs_members(e, batch, n))
                    for n, e in enumerate(chunk, start)
                ]
                direct.write(lines)
                continue
            for event in chunk:
                log.info(AUDIT_LOG_EVENT, **{"log.logger": AUDIT_LOGGER, **ecs.to_ecs(event)})


def _scrubbed(event: AuditEvent) -> AuditEvent:
    if type(event.details) is ScrubbedDetails:
        return event
    return with_details(event, scrub(event.details))
