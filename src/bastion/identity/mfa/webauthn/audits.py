"""`bastion check` findings of passkeys: an RP id and origins browsers will actually accept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bastion.checks import Finding, Severity, register
from bastion.identity.mfa.webauthn.settings import DEVELOPMENT_RP_ID

if TYPE_CHECKING:
    from bastion.config.settings import Settings

__all__ = ["audit_webauthn"]


def _within(host: str, rp_id: str) -> bool:
    return host == rp_id or host.endswith(f".{rp_id}")


@register
def audit_webauthn(settings: Settings) -> Iterator[Finding]:
    webauthn = settings.webauthn
    rp_id = webauthn.effective_rp_id(settings.public_url)
    origins = webauthn.effective_origins(settings.public_url, settings.port)
    if settings.is_production and rp_id == DEVELOPMENT_RP_ID:
        yield Finding(
            "webauthn_rp_id_localhost",
            Severity.MEDIUM,
            "The passkey RP id is 'localhost': browsers refuse passkeys on any real site.",
            "Set BASTION_PUBLIC_URL, or BASTION_WEBAUTHN__RP_ID and BASTION_WEBAUTHN__ORIGINS.",
        )
    for origin in origins:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        if parts.scheme != "https" and host != DEVELOPMENT_RP_ID:
            yield Finding(
                "webauthn_origin_insecure",
                Severity.MEDIUM,
                f"Passkey origin {origin} is not HTTPS: ceremonies there are not protected "
                "by TLS (and browsers refuse them outside localhost).",
                "List only https:// origins in BASTION_WEBAUTHN__ORIGINS.",
            )
        if not _within(host, rp_id):
            yield Finding(
                "webauthn_origin_outside_rp_id",
                Severity.MEDIUM,
                f"Passkey origin {origin} is not {rp_id} or a subdomain of it: browsers refuse "
                "ceremonies there.",
                "Make BASTION_WEBAUTHN__RP_ID the origins' host or a parent domain of it.",
            )
