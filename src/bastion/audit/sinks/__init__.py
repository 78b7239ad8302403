"""Audit sinks: where the recorder writes batches of events.

:class:`DatabaseSink` is the trail of record (queryable, indexed, chained: see
:mod:`bastion.audit.chain`; how a batch is appended under the chain head's lock:
:mod:`bastion.audit.sinks._append`); :class:`LogSink` emits the same events as ECS JSON lines
for a SIEM; :class:`InMemorySink` is for tests. Other SIEM transports live in
:mod:`bastion.audit.export`.
"""

from bastion.audit.sinks._append import INSERT_CHUNK, append_rows, lock_head
from bastion.audit.sinks._database import DatabaseSink
from bastion.audit.sinks._log import AUDIT_LOG_EVENT, AUDIT_LOGGER, LOG_CHUNK, LogSink
from bastion.audit.sinks._memory import InMemorySink
from bastion.audit.sinks._rows import event_row

__all__ = [
    "AUDIT_LOGGER",
    "AUDIT_LOG_EVENT",
    "INSERT_CHUNK",
    "LOG_CHUNK",
    "DatabaseSink",
    "InMemorySink",
    "LogSink",
    "append_rows",
    "event_row",
    "lock_head",
]
