"""The decision log: every check through the API or the SDK leaves an audit event.

Denied decisions are always recorded; allowed ones are sampled at ``sample_rate`` (1.0, the
default, records every one). Each event names the store, the model version, the request id
(from the ASGI scope), the latency and a reason. Events go through the audit recorder, which
never blocks the check and bounds what an attacker can make it store.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.audit.context import record_from_scope
from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.audit.recorder import MAX_DETAIL_STRING_CHARS, ScrubbedDetails, scrub
from bastion.clock import Clock

__all__ = ["Decision", "DecisionLog", "decision_details"]

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
        return self.log(
            decision.allowed,
            store_id=decision.store_id,
            model_id=decision.model_id,
            object=decision.object,
            relation=decision.relation,
            user=decision.user,
            latency_ms=decision.latency_ms,
            reason=decision.reason,
            source=decision.source,
            scope=scope,
            actor=actor,
        )

    def log(
        self,
        allowed: bool,
        *,
        store_id: str,
        model_id: str,
        object: str,  # noqa: A002 - OpenFGA's field name
        relation: str,
        user: str,
        latency_ms: float,
        reason: str,
        source: str = "api",
        scope: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> bool:
        """:meth:`record` of a :class:`Decision` with these fields (the service's hot path)."""
        if allowed and not self._sampled():
            return False
        event_type = EventType.AUTHZ_CHECK_ALLOWED if allowed else EventType.AUTHZ_CHECK_DENIED
        outcome = Outcome.SUCCESS if allowed else Outcome.FAILURE
        details = decision_details(
            store_id=store_id,
            model_id=model_id,
            object=object,
            relation=relation,
            user=user,
            latency_ms=round(latency_ms, 3),
            source=source,
        )
        subject = f"{object}#{relation}@{user}"
        if scope is not None:
            record_from_scope(
                self._audit,
                scope,
                event_type,
                outcome,
                actor=actor,
                subject=subject,
                reason=reason,
                details=details,
                clock=self._clock,
            )
            return True
        event = AuditEvent(
            type=event_type,
            outcome=outcome,
            time=self._clock.now(),
            actor=actor,
            subject=subject,
            reason=reason,
            details=details,
        )
        self._audit.record(event)
        return True


#: The decision event's detail keys: none names a credential (checked at import below), so
#: the recorder's redaction would leave them all as they are.
_DETAIL_KEYS = ("store_id", "model_id", "object", "relation", "user", "latency_ms", "source")
_KEYS_KEPT = all(scrub({key: "x"}) == {key: "x"} for key in _DETAIL_KEYS)


def decision_details(
    *,
    store_id: str,
    model_id: str,
    object: str,  # noqa: A002 - OpenFGA's field name
    relation: str,
    user: str,
    latency_ms: float,
    source: str,
) -> Mapping[str, Any]:
    """The decision event's details, exactly as :func:`bastion.audit.recorder.scrub` leaves
    them. A decision's details are short texts and one number: when every text is ASCII
    without NUL and within the recorder's bound (every check through the API, whose fields
    are bounded far below it), they are already what scrubbing would give, and the read-only
    :class:`ScrubbedDetails` is built directly (the recorder does not scrub it again);
    otherwise they are scrubbed."""
    texts = store_id + model_id + object + relation + user + source
    if (
        _KEYS_KEPT
        and texts.isascii()
        and "\x00" not in texts
        # Each text within the bound: all of them together are (every check through the API),
        # or else each one is.
        and (
            len(texts) <= MAX_DETAIL_STRING_CHARS
            or max(len(store_id), len(model_id), len(object), len(relation), len(user), len(source))
            <= MAX_DETAIL_STRING_CHARS
        )
        and math.isfinite(latency_ms)
    ):
        return ScrubbedDetails(
            store_id=store_id,
            model_id=model_id,
            object=object,
            relation=relation,
            user=user,
            # Integral floats as integers, as scrubbing (and the chain's canonical form) has it.
            latency_ms=int(latency_ms) if latency_ms.is_integer() else latency_ms,
            source=source,
        )
    scrubbed: Mapping[str, Any] = scrub(
        {
            "store_id": store_id,
            "model_id": model_id,
            "object": object,
            "relation": relation,
            "user": user,
            "latency_ms": latency_ms,
            "source": source,
        }
    )
    return scrubbed
