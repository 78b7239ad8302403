"""The decision log: every check through the API or the SDK leaves an audit event.

Denied decisions are always recorded; allowed ones are sampled at ``sample_rate`` (1.0, the
default, records every one). Each event names the store, the model version, the request id
(from the ASGI scope), the latency and a reason. Events go through the audit recorder, which
never blocks the check and bounds what an attacker can make it store.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.audit.context import event_from_scope
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock

__all__ = ["Decision", "DecisionLog"]

#: Sampling resolution: rates are applied in millionths.
_SCALE = 1_000_000


@dataclass(frozen=True, slots=True)
class Decision:
    """One check decision, as the audit trail records it."""

    allowed: bool
    store_id: str
    model_id: str
    object: str
    relation: str
    user: str
    latency_ms: float
    reason: str
    source: str = "api"  # "api" (the HTTP API) or "sdk" (an embedded check)


class DecisionLog:
    """Records decisions as ``authz:check:allowed`` / ``authz:check:denied`` events."""

    def __init__(self, audit: AuditRecorder, clock: Clock, *, sample_rate: float) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError("sample_rate must be within [0, 1]")
        self._audit = audit
        self._clock = clock
        self._threshold = round(sample_rate * _SCALE)

    def _sampled(self) -> bool:
        # secrets, not random: the choice of what is logged must not be predictable from
        # earlier outputs (a caller timing requests to fall outside the sample).
        return self._threshold >= _SCALE or secrets.randbelow(_SCALE) < self._threshold

    def record(
        self,
        decision: Decision,
        *,
        scope: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> bool:
        """Record ``decision`` (denied: always; allowed: when sampled). True if recorded."""
        if decision.allowed and not self._sampled():
            return False
        event_type = (
            EventType.AUTHZ_CHECK_ALLOWED if decision.allowed else EventType.AUTHZ_CHECK_DENIED
        )
        outcome = Outcome.SUCCESS if decision.allowed else Outcome.FAILURE
        details = {
            "store_id": decision.store_id,
            "model_id": decision.model_id,
            "object": decision.object,
            "relation": decision.relation,
            "user": decision.user,
            "latency_ms": round(decision.latency_ms, 3),
            "source": decision.source,
        }
        subject = f"{decision.object}#{decision.relation}@{decision.user}"
        if scope is not None:
            event = event_from_scope(
                scope,
                event_type,
                outcome,
                actor=actor,
                subject=subject,
                reason=decision.reason,
                details=details,
                clock=self._clock,
            )
        else:
            event = AuditEvent(
                type=event_type,
                outcome=outcome,
                time=self._clock.now(),
                actor=actor,
                subject=subject,
                reason=decision.reason,
                details=details,
            )
        self._audit.record(event)
        return True
