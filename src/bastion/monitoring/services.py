"""The monitoring pipeline: stored audit events -> detectors -> alerts -> delivery.

:class:`DetectorEngine` is an audit subscriber: the audit writer hands it each committed batch
(with chain sequence numbers, the alerts' evidence); it queues them (bounded: a flood is
counted in ``bastion_detector_events_dropped``, never blocks the trail) and a background task
runs every detector on each event. An alert passes the cooldown (one alert per detector and key
per ``cooldown_seconds``, shared through the counter store) and goes to the
:class:`AlertDispatcher`, which records it as an ``alert:*`` audit event (so alerts are chained
and exported like any event), counts it, and delivers it in the background: signed webhooks
(through the SSRF-safe outbound client), operator mails, and the user's new sign-in mail.
Events of source ``alert`` are never fed back to the detectors.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from typing import Any

from bastion.audit.events import EventType
from bastion.audit.interfaces import AuditRecorder, StoredEvent
from bastion.audit.recorder import WRITE_SLICE
from bastion.logging import get_logger
from bastion.monitoring.alerts import Alert, Detector, Severity
from bastion.monitoring.email import EmailAlerts, SignInNotifier
from bastion.monitoring.interfaces import CounterStore, EventDetector
from bastion.monitoring.metrics import SecurityMetrics
from bastion.monitoring.settings import WebhookSettings
from bastion.monitoring.webhooks import WebhookSender
from bastion.protections.ratelimit.errors import StoreUnavailable

logger = get_logger("bastion.monitoring")

#: Deliveries in flight (including those waiting for a retry) before new ones are dropped.
MAX_PENDING_DELIVERIES = 1000
CLOSE_TIMEOUT_SECONDS = 5.0
ALERT_SOURCE = "alert"


class AlertDispatcher:
    def __init__(
        self,
        audit: AuditRecorder,
        metrics: SecurityMetrics,
        *,
        webhooks: Sequence[WebhookSettings] = (),
        sender: WebhookSender | None = None,
        email: EmailAlerts | None = None,
        email_min_severity: Severity = Severity.HIGH,
        notifier: SignInNotifier | None = None,
        max_pending: int = MAX_PENDING_DELIVERIES,
    ) -> None:
        self._audit = audit
        self._metrics = metrics
        self._webhooks = tuple(webhooks) if sender is not None else ()
        self._sender = sender
        self._email = email
        self._email_min = email_min_severity
        self._notifier = notifier
        self._max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()

    def raise_alert(self, alert: Alert) -> None:
        """Record, count and start delivering ``alert``. Never blocks, never raises."""
        self._audit.record(alert.to_event())
        self._metrics.alert(alert)
        logger.warning(
            "security_alert",
            detector=alert.detector.value,
            severity=alert.severity.value,
            alert_id=alert.id,
        )
        for webhook in self._webhooks:
            if alert.severity.at_least(webhook.min_severity):
                self._spawn("webhook", self._webhook(alert, webhook))
        if self._email is not None and alert.severity.at_least(self._email_min):
            self._spawn("email", self._email.send(alert))
        if (
            self._notifier is not None
            and alert.detector is Detector.NEW_DEVICE_LOGIN
            and alert.details.get("notify_user")
        ):
            self._spawn("user_email", self._notifier.send(alert))

    async def _webhook(self, alert: Alert, webhook: WebhookSettings) -> None:
        if self._sender is None:  # pragma: no cover - _webhooks is empty without a sender
            return
        delivered = await self._sender.deliver(alert, webhook)
        self._metrics.delivery("webhook", "delivered" if delivered else "dead_lettered")

    def _spawn(self, channel: str, work: Coroutine[Any, Any, None]) -> None:
        if len(self._tasks) >= self._max_pending:
            work.close()
            self._metrics.delivery(channel, "dropped")
            logger.error("alert_delivery_dropped", channel=channel, pending=len(self._tasks))
            return
        task = asyncio.get_running_loop().create_task(self._guard(channel, work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, channel: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception as exc:  # noqa: BLE001 - one failed delivery must not stop the others
            self._metrics.delivery(channel, "failed")
            logger.error("alert_delivery_failed", channel=channel, error=type(exc).__name__)  # noqa: TRY400
        else:
            if channel != "webhook":
                self._metrics.delivery(channel, "queued")

    async def drain(self) -> None:
        """Wait for every delivery in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self.drain()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _detectors_by_type(
    detectors: Sequence[EventDetector],
) -> dict[EventType, tuple[EventDetector, ...]]:
    """For each event type, the detectors that look at it, in order (see ``event_types`` on
    :class:`~bastion.monitoring.interfaces.EventDetector`); none for alerts."""
    return {
        event_type: ()
        if event_type.source == ALERT_SOURCE
        else tuple(
            d
            for d in detectors
            if (types := getattr(d, "event_types", None)) is None or event_type in types
        )
        for event_type in EventType
    }


class DetectorEngine:
    """An :class:`~bastion.audit.interfaces.AuditSubscriber` running the detectors."""

    def __init__(
        self,
        detectors: Sequence[EventDetector],
        store: CounterStore,
        dispatcher: AlertDispatcher,
        metrics: SecurityMetrics,
        *,
        cooldown_seconds: float,
        queue_size: int,
    ) -> None:
        self._detectors = tuple(detectors)
        self._by_type = _detectors_by_type(self._detectors)
        #: The events some detector looks at (the audit sink may leave the others out;
        #: on_stored skips them anyway).
        self.event_types = frozenset(kind for kind, found in self._by_type.items() if found)
        self._store = store
        self._dispatcher = dispatcher
        self._metrics = metrics
        self._cooldown = cooldown_seconds
        self._queue: asyncio.Queue[StoredEvent] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None

    def on_stored(self, events: Sequence[StoredEvent]) -> None:
        by_type, everyone = self._by_type, self._detectors
        for stored in events:
            if not by_type.get(stored.event.type, everyone):
                continue  # no detector looks at it; alerts never (an alert on an alert loops)
            try:
                self._queue.put_nowait(stored)
            except asyncio.QueueFull:
                self._metrics.detector_dropped += 1

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="bastion-detectors")

    async def _run(self) -> None:
        evaluated = 0
        while True:
            if self._queue.empty():
                evaluated = 0  # get() waits: the loop runs
            stored = await self._queue.get()  # no yield while the queue holds events
            try:
                await self.process(stored)  # no yield either with an in-memory store
            except Exception as exc:  # noqa: BLE001 - one bad event must not stop detection
                self._metrics.detector_errors += 1
                logger.error("detector_failed", error=type(exc).__name__)  # noqa: TRY400
            finally:
                self._queue.task_done()
            evaluated += 1
            if evaluated >= max(WRITE_SLICE, self._queue.qsize()):
                # A batch's events are evaluated in slices, with requests served between two;
                # larger ones while a backlog waits, so detection keeps up (as the audit writer).
                evaluated = 0
                await asyncio.sleep(0)

    async def drain(self) -> None:
        """Wait until every queued event was evaluated (tests)."""
        await self._queue.join()

    async def aclose(self) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
                await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def process(self, stored: StoredEvent) -> list[Alert]:
        """Run every detector on one event; returns the alerts raised (after the cooldown)."""
        raised: list[Alert] = []
        for detector in self._by_type.get(stored.event.type, self._detectors):
            try:
                alerts = await detector.observe(stored)
                for alert in alerts:
                    if await self._cooling_down(alert):
                        continue
                    self._dispatcher.raise_alert(alert)
                    raised.append(alert)
            except StoreUnavailable:
                self._metrics.detector_errors += 1
                logger.warning("detector_store_unavailable", detector=type(detector).__name__)
        return raised

    async def _cooling_down(self, alert: Alert) -> bool:
        if self._cooldown <= 0:
            return False
        key = f"cd:{alert.detector.value}:{alert.key}"
        return await self._store.seen(key, alert.time.timestamp(), self._cooldown)
