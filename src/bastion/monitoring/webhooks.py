"""Webhook delivery: each alert POSTed as signed JSON, retried with backoff, then dead-lettered.

Every attempt goes through :class:`~bastion.outbound.OutboundClient` (the SSRF checks apply to
the configured URL at every attempt, DNS included) and is signed afresh
(:func:`bastion.sdk.webhooks.sign_webhook`), so a retry hours later still falls inside the
receiver's replay window. A 2xx answer is success. Network failures, time-outs, 408, 425, 429 and
5xx are retried after ``min(max_delay, base * 2**(attempt-1))`` scaled by a random factor in
[0.5, 1) (jitter: many workers retrying one receiver do not hammer it in lockstep), or after
the receiver's ``Retry-After`` (seconds) when that is longer, up to ``max_delay``. Other 4xx
answers and refused destinations are permanent: no retry. After the last attempt the alert is
stored as a dead letter and an ``alert:delivery:dead_lettered`` event is recorded.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.audit.interfaces import AuditRecorder
from bastion.clock import Clock
from bastion.logging import get_logger
from bastion.monitoring.alerts import Alert
from bastion.monitoring.errors import DeadLetterStoreFailed
from bastion.monitoring.interfaces import DeadLetterStore
from bastion.monitoring.settings import WebhookSettings
from bastion.outbound import DestinationRefused, OutboundClient, OutboundError
from bastion.sdk.webhooks import sign_webhook

logger = get_logger("bastion.monitoring.webhooks")

RETRYABLE_STATUSES = frozenset({408, 425, 429})
CHANNEL = "webhook"

Sleep = Callable[[float], Awaitable[None]]

_JITTER = random.SystemRandom()


def backoff_delay(attempt: int, base: float, maximum: float, unit: float) -> float:
    """The wait after failed ``attempt`` (1-based); ``unit`` in [0, 1) picks the jitter."""
    growth: float = 2.0 ** (attempt - 1)
    return min(maximum, base * growth) * (0.5 + unit / 2)


def encode(alert: Alert) -> bytes:
    return json.dumps(alert.payload(), separators=(",", ":"), sort_keys=True).encode("utf-8")


class WebhookSender:
    """Delivers alerts to one configured webhook at a time (see the module docstring)."""

    def __init__(
        self,
        client: OutboundClient,
        dead_letters: DeadLetterStore,
        *,
        audit: AuditRecorder,
        clock: Clock,
        max_attempts: int,
        base_delay: float,
        max_delay: float,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = _JITTER.random,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._dead_letters = dead_letters
        self._audit = audit
        self._clock = clock
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._jitter = jitter
        self._now = now

    async def deliver(self, alert: Alert, webhook: WebhookSettings) -> bool:
        """POST ``alert`` to ``webhook`` until it is accepted; False once dead-lettered."""
        body = encode(alert)
        secret = webhook.secret.get_secret_value()
        error: str | None = "not_attempted"
        attempt = 0
        for attempt in range(1, self._max_attempts + 1):
            headers = sign_webhook(secret, alert.id, body, timestamp=int(self._now()))
            headers["Content-Type"] = "application/json"
            retry, error, wait = await self._attempt(webhook, body, headers)
            if error is None:
                return True
            logger.warning(
                "alert_webhook_failed", webhook=webhook.name, attempt=attempt, error=error
            )
            if not retry or attempt == self._max_attempts:
                break
            delay = backoff_delay(attempt, self._base_delay, self._max_delay, self._jitter())
            # A receiver's Retry-After is honoured (within max_delay): it knows when it recovers.
            await self._sleep(max(delay, min(wait, self._max_delay)))
        await self._dead_letter(alert, webhook, attempt, error or "unknown")
        return False

    async def _attempt(
        self, webhook: WebhookSettings, body: bytes, headers: dict[str, str]
    ) -> tuple[bool, str | None, float]:
        """(retry?, error, Retry-After seconds) for one POST; error None on success."""
        try:
            response = await self._client.post(webhook.url, content=body, headers=headers)
        except DestinationRefused as exc:
            return False, f"{exc.code}:{exc.reason}", 0.0
        except OutboundError as exc:
            return True, f"{exc.code}:{exc.reason}", 0.0
        if response.ok:
            return False, None, 0.0
        status = response.status
        retry_after = response.headers.get("retry-after", "")
        wait = float(retry_after) if retry_after.isdigit() else 0.0
        return status >= 500 or status in RETRYABLE_STATUSES, f"http_{status}", wait

    async def _dead_letter(
        self, alert: Alert, webhook: WebhookSettings, attempts: int, error: str
    ) -> None:
        try:
            letter = await self._dead_letters.add(
                alert,
                channel=CHANNEL,
                destination=webhook.name,
                attempts=attempts,
                last_error=error,
            )
            letter_id: str | None = letter.id
        except DeadLetterStoreFailed:
            letter_id = None
            logger.error(  # noqa: TRY400 - the cause is a database error: no values logged
                "alert_dead_letter_not_stored", webhook=webhook.name, alert=alert.id
            )
        self._audit.record(
            AuditEvent(
                type=EventType.ALERT_DELIVERY_FAILED,
                outcome=Outcome.FAILURE,
                time=self._clock.now(),
                reason=error,
                details={
                    "alert_id": alert.id,
                    "detector": alert.detector.value,
                    "webhook": webhook.name,
                    "attempts": attempts,
                    "dead_letter_id": letter_id,
                },
            )
        )
