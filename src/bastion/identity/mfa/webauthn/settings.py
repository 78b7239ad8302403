"""Typed settings of WebAuthn (passkeys), nested in :class:`bastion.config.Settings` as
``webauthn`` (``BASTION_WEBAUTHN__RP_ID``, ``BASTION_WEBAUTHN__ORIGINS``, ...).

The relying party id and the allowed origins are what stop phishing: a browser signs only for
the RP id of the page's own site, and the server accepts only client data from an allowed
origin. Both are explicit settings; when they are not set they derive from
``public_url`` (``https://id.example.com`` gives the RP id ``id.example.com`` and that origin),
and only without a public URL (development) from ``localhost`` and the server's port.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import NoDecode

__all__ = [
    "DEVELOPMENT_RP_ID",
    "MAX_CREDENTIALS_PER_USER",
    "WebAuthnSettings",
    "origin_of",
]

DEVELOPMENT_RP_ID = "localhost"
#: Passkeys one account may hold: bounds the rows (and the allowCredentials list) per account.
MAX_CREDENTIALS_PER_USER = 25
_MAX_ORIGINS = 16


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased: what browsers put in clientDataJSON."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    default_port = {"http": 80, "https": 443}[parts.scheme]
    port = f":{parts.port}" if parts.port not in (None, default_port) else ""
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


class WebAuthnSettings(BaseModel):
    """Relying party identity, allowed origins, ceremony lifetime and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rp_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Relying party id: the site's registrable domain or host (no scheme, no "
        "port). Default: the host of public_url, else 'localhost'.",
    )
    rp_name: str = Field(
        default="Bastion", min_length=1, max_length=64, description="Shown by authenticators."
    )
    origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        max_length=_MAX_ORIGINS,
        description="Origins allowed in clientDataJSON (exact scheme://host[:port]). Default: "
        "the origin of public_url, else http://localhost:<port>.",
    )
    challenge_ttl_seconds: int = Field(
        default=300,
        ge=30,
        le=900,
        description="How long a ceremony's challenge can be answered (single use).",
    )
    timeout_ms: int = Field(
        default=120_000,
        ge=10_000,
        le=600_000,
        description="The timeout hint given to the browser.",
    )
    max_credentials_per_user: int = Field(default=10, ge=1, le=MAX_CREDENTIALS_PER_USER)
    page_enabled: bool = Field(
        default=True, description="Serve the passkeys page at /passkeys (it uses the public API)."
    )
    attestation: Literal["none"] = Field(
        default="none",
        description="Attestation conveyance: 'none' (no authenticator model data is collected).",
    )

    @field_validator("origins", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("origins")
    @classmethod
    def _exact_origins(cls, value: list[str]) -> list[str]:
        cleaned = [origin.rstrip("/").lower() for origin in value]
        for origin in cleaned:
            if origin_of(origin) != origin:
                raise ValueError(f"not a bare origin (scheme://host[:port]): {origin!r}")
        return cleaned

    @field_validator("rp_id")
    @classmethod
    def _bare_host(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or ":" in value or value != value.strip()):
            raise ValueError("rp_id is a host name, without scheme, port or path")
        return value.lower() if value is not None else None

    def effective_rp_id(self, public_url: str | None) -> str:
        if self.rp_id:
            return self.rp_id
        if public_url:
            host = urlsplit(public_url).hostname
            if host:
                return host.lower()
        return DEVELOPMENT_RP_ID

    def effective_origins(self, public_url: str | None, port: int) -> tuple[str, ...]:
        if self.origins:
            return tuple(self.origins)
        if public_url:
            return (origin_of(public_url),)
        return (f"http://{DEVELOPMENT_RP_ID}:{port}",)
