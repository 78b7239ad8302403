"""Signed webhooks: how Bastion signs an alert, and how a receiver verifies it.

Wire format (each delivery attempt is signed afresh)::

    Bastion-Webhook-Id: 5f0c...          the alert id: the same on every retry (deduplicate on it)
    Bastion-Webhook-Timestamp: 1767225600  Unix seconds when this attempt was signed
    Bastion-Webhook-Signature: v1=<hex>  HMAC-SHA256(secret, "<timestamp>.<id>.<raw body>")

The id and the timestamp are inside the MAC, so neither can be swapped onto another body. A
receiver calls :func:`verify_webhook` on the *raw* body bytes before parsing them; it refuses a
signature that does not match any of its secrets (several during a rotation), and a timestamp
outside the replay window (default five minutes either way): a captured request cannot be
replayed later. Within the window, deduplicate on the id.

Every failure raises the same :class:`WebhookVerificationFailed` (the reason is in ``reason``
for the receiver's logs, never for the sender).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from bastion.errors import BastionError

__all__ = [
    "ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookVerificationFailed",
    "sign_webhook",
    "verify_webhook",
]

ID_HEADER: Final = "Bastion-Webhook-Id"
TIMESTAMP_HEADER: Final = "Bastion-Webhook-Timestamp"
SIGNATURE_HEADER: Final = "Bastion-Webhook-Signature"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE_SECONDS: Final = 300
#: Bounds on header sizes, so a hostile sender cannot make the receiver hash huge values.
_MAX_ID_CHARS: Final = 128
_MAX_SIGNATURES: Final = 8


class WebhookVerificationFailed(BastionError):
    """A webhook's signature, timestamp or id is missing, malformed, wrong or too old."""

    code = "webhook_signature_invalid"
    status = 401
    title = "Invalid webhook signature"

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def _mac(secret: str | bytes, timestamp: int, event_id: str, body: bytes) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    message = f"{timestamp}.{event_id}.".encode("ascii") + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign_webhook(
    secret: str | bytes, event_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers that sign ``body`` for delivery now (or at ``timestamp``)."""
    if not event_id.isascii() or not 0 < len(event_id) <= _MAX_ID_CHARS:
        raise ValueError("event_id must be 1-128 ASCII characters")
    when = int(time.time()) if timestamp is None else timestamp
    return {
        ID_HEADER: event_id,
        TIMESTAMP_HEADER: str(when),
        SIGNATURE_HEADER: f"{SCHEME}={_mac(secret, when, event_id, body)}",
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    raise WebhookVerificationFailed(f"missing_{lowered.rsplit('-', 1)[-1]}")


def verify_webhook(
    secrets: str | bytes | Sequence[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: Callable[[], float] = time.time,
) -> str:
    """Check a received webhook; returns its id (deduplicate on it).

    Raises :class:`WebhookVerificationFailed` unless the signature matches one of ``secrets``
    and the timestamp is within ``tolerance_seconds`` of ``now()``.
    """
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    if not keys or not all(keys):
        raise ValueError("at least one non-empty secret is needed")
    event_id = _header(headers, ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not event_id.isascii() or not 0 < len(event_id) <= _MAX_ID_CHARS:
        raise WebhookVerificationFailed("bad_id")
    if not stamp.isdigit() or len(stamp) > 12:
        raise WebhookVerificationFailed("bad_timestamp")
    timestamp = int(stamp)
    if abs(now() - timestamp) > tolerance_seconds:
        # Replay protection: an old (or far-future) signed request is refused.
        raise WebhookVerificationFailed("timestamp_outside_window")
    offered = [
        part.strip()[len(SCHEME) + 1 :]
        for part in signature.split(",")[:_MAX_SIGNATURES]
        if part.strip().startswith(f"{SCHEME}=")
    ]
    expected = [_mac(key, timestamp, event_id, body) for key in keys]
    # Constant-time comparison: the time taken must not reveal how much of a guess was right.
    matched = False
    for candidate in offered:
        for good in expected:
            matched |= hmac.compare_digest(candidate.encode("ascii", "replace"), good.encode())
    if not matched:
        raise WebhookVerificationFailed("signature_mismatch")
    return event_id
