"""RFC 6238 time-based one-time passwords, over the maintained ``pyotp`` package.

Parameters are the ones every authenticator app supports: HMAC-SHA1, 6 digits, 30-second steps,
a 160-bit random secret (RFC 4226 §4 recommends 160 bits). :func:`matching_step` accepts the
current step and one step either side (RFC 6238 §5.2: clock drift and typing time) and returns
*which* step matched, so the caller can refuse any step not newer than the last one accepted
(replay protection, see :mod:`bastion.identity.mfa.services`).
"""

from __future__ import annotations

import hashlib
import hmac
import io
from datetime import datetime
from typing import Any

import pyotp

__all__ = [
    "DIGITS",
    "DRIFT_STEPS",
    "STEP_SECONDS",
    "matching_step",
    "new_secret",
    "provisioning_uri",
    "qr_svg",
    "time_step",
]

DIGITS = 6
STEP_SECONDS = 30
#: Steps accepted either side of the current one.
DRIFT_STEPS = 1
#: 32 base32 characters = 160 bits.
SECRET_CHARS = 32
#: The QR code's module size in the SVG (pixels per module).
QR_SCALE = 4


def new_secret() -> str:
    """A fresh base32 secret from the operating system's CSPRNG."""
    return pyotp.random_base32(length=SECRET_CHARS)


def _totp(secret: str, *, digits: int = DIGITS, digest: Any = hashlib.sha1) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=digits, digest=digest, interval=STEP_SECONDS)


def time_step(now: datetime) -> int:
    """The RFC 6238 time step ``T`` of ``now`` (T0 = 0)."""
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int, *, digits: int = DIGITS, digest: Any = hashlib.sha1) -> str:
    """The code of ``step`` (also used by the RFC 6238 appendix B vector test)."""
    return _totp(secret, digits=digits, digest=digest).generate_otp(step)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step within ``now`` ± :data:`DRIFT_STEPS` whose code is ``code``, else None.

    Every candidate is compared in constant time and all are compared whatever matches first,
    so the answer's timing does not tell which step (or digit) was close.
    """
    candidate = code.strip().replace(" ", "")
    if len(candidate) != DIGITS or not candidate.isascii() or not candidate.isdigit():
        return None
    current = time_step(now)
    found: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(code_at(secret, step).encode(), candidate.encode()):
            found = step
    return found


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps import (Key Uri Format)."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The URI as an SVG QR code (``segno``), generated server-side: the secret never goes to
    a third-party QR service."""
    import segno  # noqa: PLC0415 - on enrollment only: segno and its XML writer ~1 MiB

    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=QR_SCALE, xmldecl=False)
    return buffer.getvalue().decode("utf-8")
