"""WebAuthn passkeys: a second factor and a passwordless first factor (py_webauthn 3.x).

- :mod:`.settings`: RP id, RP name, allowed origins, challenge lifetime (``BASTION_WEBAUTHN__*``)
- :mod:`.challenges`: server-stored challenges, single use, short-lived, bound to a purpose
- :mod:`.ceremonies`: options and verification over the ``webauthn`` package
- :mod:`.credentials`: an account's passkeys (several, named)
- :mod:`.services`: :class:`WebAuthnService`, the ceremonies end to end, with audit events
- :mod:`.routes`, :mod:`.page`: the HTTP API and the minimal passkeys page
- :mod:`.errors`: the error tree (``webauthn_*`` codes)
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from bastion.identity.mfa.webauthn.ceremonies import RelyingParty
from bastion.identity.mfa.webauthn.challenges import ChallengeStore
from bastion.identity.mfa.webauthn.services import Ceremony, VerifiedPasskey, WebAuthnService
from bastion.identity.mfa.webauthn.settings import WebAuthnSettings

if TYPE_CHECKING:
    # Not at run time: the settings module imports this package's settings (import cycle).
    from bastion.audit.interfaces import AuditRecorder
    from bastion.clock import Clock
    from bastion.config.settings import Settings
    from bastion.storage import Database

__all__ = [
    "Ceremony",
    "VerifiedPasskey",
    "WebAuthnService",
    "WebAuthnSettings",
    "build_webauthn",
    "relying_party",
]


def relying_party(settings: Settings) -> RelyingParty:
    """Our relying party, from the ``webauthn`` settings (defaults from ``public_url``)."""
    webauthn = settings.webauthn
    return RelyingParty(
        rp_id=webauthn.effective_rp_id(settings.public_url),
        rp_name=webauthn.rp_name,
        origins=webauthn.effective_origins(settings.public_url, settings.port),
        timeout_ms=webauthn.timeout_ms,
    )


def build_webauthn(
    settings: Settings, *, database: Database, audit: AuditRecorder, clock: Clock
) -> WebAuthnService:
    webauthn = settings.webauthn
    challenges = ChallengeStore(
        database, clock=clock, ttl=timedelta(seconds=webauthn.challenge_ttl_seconds)
    )
    return WebAuthnService(
        database,
        relying_party(settings),
        challenges,
        max_credentials=webauthn.max_credentials_per_user,
        audit=audit,
        clock=clock,
    )
