"""Receiver-side verification of signed webhooks (bastion.sdk.webhooks)."""

from __future__ import annotations

import pytest

from bastion.sdk import WebhookVerificationFailed, sign_webhook, verify_webhook

SECRET = "s" * 40
BODY = b'{"id":"a1","severity":"high"}'
NOW = 1_767_225_600


def _now() -> float:
    return float(NOW)


def test_a_good_signature_verifies_and_returns_the_id() -> None:
    headers = sign_webhook(SECRET, "a1", BODY, timestamp=NOW)
    assert verify_webhook(SECRET, headers, BODY, now=_now) == "a1"


def test_header_names_are_case_insensitive_and_old_secrets_still_verify() -> None:
    headers = {k.lower(): v for k, v in sign_webhook("old" * 11, "a1", BODY, timestamp=NOW).items()}
    assert verify_webhook([SECRET, "old" * 11], headers, BODY, now=_now) == "a1"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: (h, b + b" "), "signature_mismatch"),
        (lambda h, b: (h, b.replace(b"high", b"low!")), "signature_mismatch"),
        (lambda h, b: ({**h, "Bastion-Webhook-Id": "a2"}, b), "signature_mismatch"),
        (lambda h, b: ({**h, "Bastion-Webhook-Timestamp": str(NOW - 1)}, b), "signature_mismatch"),
        (
            lambda h, b: ({**h, "Bastion-Webhook-Timestamp": str(NOW - 301)}, b),
            "timestamp_outside_window",
        ),
        (
            lambda h, b: ({**h, "Bastion-Webhook-Timestamp": str(NOW + 301)}, b),
            "timestamp_outside_window",
        ),
        (lambda h, b: ({**h, "Bastion-Webhook-Timestamp": "-5"}, b), "bad_timestamp"),
        (lambda h, b: ({**h, "Bastion-Webhook-Signature": "v0=abc"}, b), "signature_mismatch"),
        (lambda h, b: ({**h, "Bastion-Webhook-Id": "x" * 200}, b), "bad_id"),
        (
            lambda h, b: ({k: v for k, v in h.items() if "Signature" not in k}, b),
            "missing_signature",
        ),
        (
            lambda h, b: ({k: v for k, v in h.items() if "Timestamp" not in k}, b),
            "missing_timestamp",
        ),
    ],
)
def test_tampered_or_replayed_webhooks_are_refused(mutate: object, reason: str) -> None:
    headers, body = mutate(sign_webhook(SECRET, "a1", BODY, timestamp=NOW), BODY)  # type: ignore[operator]
    with pytest.raises(WebhookVerificationFailed) as caught:
        verify_webhook(SECRET, headers, body, now=_now)
    assert caught.value.reason == reason


def test_an_old_timestamp_with_a_valid_signature_is_a_replay() -> None:
    old = NOW - 3600
    headers = sign_webhook(SECRET, "a1", BODY, timestamp=old)
    with pytest.raises(WebhookVerificationFailed) as caught:
        verify_webhook(SECRET, headers, BODY, now=_now)
    assert caught.value.reason == "timestamp_outside_window"
    assert verify_webhook(SECRET, headers, BODY, now=lambda: float(old + 10)) == "a1"


def test_the_wrong_secret_is_refused() -> None:
    headers = sign_webhook(SECRET, "a1", BODY, timestamp=NOW)
    with pytest.raises(WebhookVerificationFailed):
        verify_webhook("t" * 40, headers, BODY, now=_now)
