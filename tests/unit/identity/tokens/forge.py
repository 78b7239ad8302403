"""Hand-made JWS tokens for attack tests: built byte by byte, bypassing every library check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from bastion.clock import FrozenClock
from bastion.identity.tokens import AccessTokenSettings, SigningKey


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def encode(value: dict[str, Any] | bytes) -> str:
    return b64(value if isinstance(value, bytes) else json.dumps(value).encode())


def claims(settings: AccessTokenSettings, clock: FrozenClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    base: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": "user-1",
        "aud": settings.audience,
        "exp": now + 300,
        "iat": now,
        "nbf": now,
        "jti": "jti-1",
        "sid": "session-1",
        "amr": ["pwd"],
        "acr": "aal1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def ed25519(
    key: SigningKey, header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes
) -> str:
    """Sign with an Ed25519 key, whatever the header says."""
    signing_input = f"{encode(header)}.{encode(payload)}"
    signature = key.key.private_key.sign(signing_input.encode())  # type: ignore[union-attr]
    return f"{signing_input}.{b64(signature)}"


def hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    signing_input = f"{encode(header)}.{encode(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"
