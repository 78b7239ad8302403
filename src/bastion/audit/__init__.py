"""The audit trail: security events, recorded without blocking, stored in a tamper-evident chain.

- :mod:`~bastion.audit.events`: the vocabulary (``EventType``, ``source:subject:action``, each
  with a description; ``docs/audit-events.md`` is generated from it by ``bastion audit catalog``).
- :mod:`~bastion.audit.recorder`: ``record(event)`` puts the event in a bounded queue; a
  background writer hands batches to the sinks.
- :mod:`~bastion.audit.sinks`: the database (the chain of record), ECS JSON log lines;
  :mod:`~bastion.audit.export`: ECS JSON lines to a rotating file, RFC 5424 syslog.
- :mod:`~bastion.audit.chain`: the keyed hash chain; :mod:`~bastion.audit.verify` walks it;
  :mod:`~bastion.audit.checkpoints`: signed chain heads; :mod:`~bastion.audit.retention`: purge.
- :mod:`~bastion.audit.query`: filtered, cursor-paginated search (admin API, ``audit search``).
- :mod:`~bastion.audit.services`: :class:`AuditLog`, the one object the app and CLI use.

Subscribing to the event stream (for detectors, metrics, anything that reacts to events)::

    from bastion.audit.interfaces import AuditSubscriber, StoredEvent

    class MyDetector:
        def on_stored(self, events: Sequence[StoredEvent]) -> None:
            for stored in events:      # stored.seq: position in the chain (cite it as evidence)
                ...                    # stored.event: the AuditEvent

    services.audit_log.subscribe(MyDetector())   # or DatabaseSink.subscribe(...)

``on_stored`` is called synchronously in the writer task after each batch commits, in chain
order, exactly once per stored event: return fast (queue slow work), never block. An exception
is logged and ignored. Events your code records in reaction (alerts) go through
``services.audit.record(...)`` like any other, so they are chained too.
"""
