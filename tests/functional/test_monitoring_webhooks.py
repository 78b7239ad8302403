"""Alert webhooks against a real local receiver (reached through the outbound client, allowed by
the test-only loopback setting): signatures verify, retries back off, dead letters persist."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.common.http_receiver import Receiver, http_receiver
from tests.unit.monitoring.helpers import ListRecorder, an_alert

from bastion.audit.events import EventType
from bastion.clock import FrozenClock
from bastion.monitoring.deadletters import DatabaseDeadLetters, MemoryDeadLetters
from bastion.monitoring.interfaces import DeadLetterStore
from bastion.monitoring.settings import WebhookSettings
from bastion.monitoring.webhooks import WebhookSender
from bastion.outbound import OutboundClient, OutboundSettings
from bastion.sdk import WebhookVerificationFailed, verify_webhook
from bastion.storage import Database

SECRET = "whsec-" + "k" * 40
NOW = 1_767_225_600


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _sender(
    receiver: Receiver,
    dead: DeadLetterStore,
    audit: ListRecorder,
    sleeps: Sleeps,
    *,
    loopback: bool = True,
    attempts: int = 4,
) -> tuple[WebhookSender, OutboundClient]:
    client = OutboundClient(
        OutboundSettings(
            allow_http=True, allowed_ports=[receiver.port], allow_loopback_for_tests=loopback
        )
    )
    sender = WebhookSender(
        client,
        dead,
        audit=audit,
        clock=FrozenClock(),
        max_attempts=attempts,
        base_delay=2.0,
        max_delay=60.0,
        sleep=sleeps,
        jitter=lambda: 0.5,
        now=lambda: float(NOW),
    )
    return sender, client


def _hook(receiver: Receiver) -> WebhookSettings:
    return WebhookSettings(name="siem", url=receiver.url(), secret=SECRET)


def _verify(headers: dict[str, str], body: bytes, **kw: Any) -> str:
    return verify_webhook(SECRET, headers, body, now=lambda: float(NOW), **kw)


async def test_a_delivered_alert_verifies_at_the_receiver_and_tampering_is_refused() -> None:
    audit, sleeps, dead = ListRecorder(), Sleeps(), MemoryDeadLetters(clock=FrozenClock())
    alert = an_alert()
    async with http_receiver([200]) as receiver:
        sender, client = _sender(receiver, dead, audit, sleeps)
        assert await sender.deliver(alert, _hook(receiver))
        await client.aclose()
    [got] = receiver.requests
    assert got.headers["content-type"] == "application/json"
    assert _verify(got.headers, got.body) == alert.id
    payload = json.loads(got.body)
    assert payload["id"] == alert.id
    assert payload["evidence"] == [3, 4, 5]
    assert payload["severity"] == "high"
    # A man in the middle changing the body, or replaying the request later, is refused.
    with pytest.raises(WebhookVerificationFailed):
        _verify(got.headers, got.body.replace(b"high", b"low!"))
    with pytest.raises(WebhookVerificationFailed) as late:
        verify_webhook(SECRET, got.headers, got.body, now=lambda: float(NOW + 600))
    assert late.value.reason == "timestamp_outside_window"
    assert dead.letters == []


async def test_retries_on_500_with_backoff_then_success() -> None:
    audit, sleeps, dead = ListRecorder(), Sleeps(), MemoryDeadLetters(clock=FrozenClock())
    async with http_receiver([500, 503, 200]) as receiver:
        sender, client = _sender(receiver, dead, audit, sleeps)
        assert await sender.deliver(an_alert(), _hook(receiver))
        await client.aclose()
    assert len(receiver.requests) == 3
    # Exponential: base 2 s doubled each time; jitter factor fixed at 0.75 here.
    assert sleeps.delays == [1.5, 3.0]
    ids = {_verify(r.headers, r.body) for r in receiver.requests}
    assert len(ids) == 1  # the same id on every retry: the receiver deduplicates on it
    assert dead.letters == []
    assert audit.of(EventType.ALERT_DELIVERY_FAILED) == []


async def test_dead_letter_after_the_last_try(database: Database) -> None:
    audit, sleeps = ListRecorder(), Sleeps()
    dead = DatabaseDeadLetters(database, clock=FrozenClock())
    alert = an_alert()
    async with http_receiver([500]) as receiver:
        sender, client = _sender(receiver, dead, audit, sleeps, attempts=3)
        assert not await sender.deliver(alert, _hook(receiver))
        await client.aclose()
    assert len(receiver.requests) == 3
    assert sleeps.delays == [1.5, 3.0]
    [letter] = await dead.list()
    assert letter.alert_id == alert.id
    assert letter.destination == "siem"
    assert letter.attempts == 3
    assert letter.last_error == "http_500"
    assert letter.payload["evidence"] == [3, 4, 5]
    [event] = audit.of(EventType.ALERT_DELIVERY_FAILED)
    assert event.details["dead_letter_id"] == letter.id


async def test_the_receivers_retry_after_is_honoured_up_to_the_maximum() -> None:
    audit, sleeps, dead = ListRecorder(), Sleeps(), MemoryDeadLetters(clock=FrozenClock())
    async with http_receiver([429, 503, 200], extra_headers="Retry-After: 30\r\n") as receiver:
        sender, client = _sender(receiver, dead, audit, sleeps)
        assert await sender.deliver(an_alert(), _hook(receiver))
        await client.aclose()
    assert sleeps.delays == [30.0, 30.0]


async def test_a_client_error_is_not_retried() -> None:
    audit, sleeps, dead = ListRecorder(), Sleeps(), MemoryDeadLetters(clock=FrozenClock())
    async with http_receiver([401]) as receiver:
        sender, client = _sender(receiver, dead, audit, sleeps)
        assert not await sender.deliver(an_alert(), _hook(receiver))
        await client.aclose()
    assert len(receiver.requests) == 1
    assert sleeps.delays == []
    assert [x.last_error for x in dead.letters] == ["http_401"]


async def test_a_loopback_webhook_is_refused_without_the_test_setting() -> None:
    audit, sleeps, dead = ListRecorder(), Sleeps(), MemoryDeadLetters(clock=FrozenClock())
    async with http_receiver([200]) as receiver:
        sender, client = _sender(receiver, dead, audit, sleeps, loopback=False)
        assert not await sender.deliver(an_alert(), _hook(receiver))
        await client.aclose()
    assert receiver.requests == []
    assert [x.last_error for x in dead.letters] == ["outbound_destination_refused:loopback"]
