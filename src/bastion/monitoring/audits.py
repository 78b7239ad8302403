"""`bastion check` findings for monitoring and the outbound client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bastion.checks import Finding, Severity, register
from bastion.monitoring.settings import MIN_WEBHOOK_SECRET_CHARS
from bastion.outbound.errors import DestinationRefused
from bastion.outbound.urls import parse_target

if TYPE_CHECKING:
    from bastion.config.settings import Settings

_DETECTORS = (
    "brute_force",
    "credential_stuffing",
    "password_spraying",
    "denial_burst",
    "new_device",
)


@register
def audit_outbound(settings: Settings) -> Iterator[Finding]:
    """Loosened outbound (SSRF) protections."""
    out = settings.outbound
    if out.allow_loopback_for_tests and settings.env != "test":
        yield Finding(
            "outbound_loopback_allowed",
            Severity.HIGH,
            "Outbound requests may reach loopback addresses (a test-only setting): a webhook or "
            "fetched URL can reach services on this host (SSRF).",
            "Remove BASTION_OUTBOUND__ALLOW_LOOPBACK_FOR_TESTS (only for BASTION_ENV=test).",
            blocks_production=True,
        )
    if out.allow_http:
        yield Finding(
            "outbound_http_allowed",
            Severity.MEDIUM,
            "Outbound requests may use plain http://: alerts and fetched documents can be read "
            "and changed on the network.",
            "Remove BASTION_OUTBOUND__ALLOW_HTTP and use https:// URLs.",
        )


@register
def audit_monitoring(settings: Settings) -> Iterator[Finding]:
    """Detectors switched off; webhooks with weak secrets or refused URLs."""
    mon = settings.monitoring
    if not mon.detectors_enabled:
        yield Finding(
            "monitoring_detectors_off",
            Severity.MEDIUM,
            "The attack detectors are off: brute force, stuffing, spraying, token theft and "
            "other attacks raise no alert.",
            "Remove BASTION_MONITORING__DETECTORS_ENABLED=false.",
        )
    else:
        for name in _DETECTORS:
            if not getattr(mon, name).enabled:
                yield Finding(
                    f"monitoring_{name}_off",
                    Severity.LOW,
                    f"The {name.replace('_', ' ')} detector is off.",
                    f"Remove BASTION_MONITORING__{name.upper()}__ENABLED=false.",
                )
    yield from _webhook_findings(settings)
    if settings.is_production and not mon.webhooks and not mon.alert_emails:
        yield Finding(
            "monitoring_no_alert_destination",
            Severity.LOW,
            "Alerts are only recorded in the audit trail and logs: no webhook or mail is sent.",
            "Set BASTION_MONITORING__WEBHOOKS or BASTION_MONITORING__ALERT_EMAILS.",
        )


def _webhook_findings(settings: Settings) -> Iterator[Finding]:
    out = settings.outbound
    for hook in settings.monitoring.webhooks:
        if len(hook.secret.get_secret_value()) < MIN_WEBHOOK_SECRET_CHARS:
            yield Finding(
                f"monitoring_webhook_secret_short_{hook.name}",
                Severity.HIGH,
                f"The secret of webhook '{hook.name}' is shorter than "
                f"{MIN_WEBHOOK_SECRET_CHARS} characters: signatures can be forged after an "
                "offline guess.",
                "Use a random secret of at least 32 characters (e.g. `openssl rand -hex 32`).",
                blocks_production=True,
            )
        if hook.url.lower().startswith("http://"):
            yield Finding(
                f"monitoring_webhook_http_{hook.name}",
                Severity.MEDIUM,
                f"Webhook '{hook.name}' uses plain http://: alerts travel unencrypted.",
                "Use an https:// URL.",
            )
        try:
            parse_target(hook.url, schemes=out.schemes, ports=out.ports)
        except DestinationRefused as exc:
            yield Finding(
                f"monitoring_webhook_url_refused_{hook.name}",
                Severity.HIGH,
                f"Webhook '{hook.name}' has a URL the outbound client refuses ({exc.reason}): "
                "its alerts will all be dead-lettered.",
                "Fix the URL (https, an allowed port, a DNS name or public address).",
            )
