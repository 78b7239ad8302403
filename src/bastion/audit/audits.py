"""`bastion check` findings for the audit trail: checkpoints, retention, SIEM export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from bastion.audit.export import parse_syslog_url
from bastion.checks import Finding, Severity, register

if TYPE_CHECKING:
    from bastion.config.settings import Settings

#: Beyond this, someone with the secret key could rewrite a long stretch of history that no
#: outside checkpoint pins down.
MAX_CHECKPOINT_INTERVAL_SECONDS = 86_400


@register
def audit_trail(settings: Settings) -> Iterator[Finding]:
    """Checkpoints off or rare; retention off; no copy for a SIEM; an unusable or lossy syslog
    destination."""
    interval = settings.audit_checkpoint_interval_seconds
    if interval == 0:
        yield Finding(
            "audit_checkpoints_off",
            Severity.MEDIUM,
            "The audit chain head is never signed: someone holding the secret key could rewrite "
            "the trail, and deleting the newest events leaves no trace.",
            "Set BASTION_AUDIT_CHECKPOINT_INTERVAL_SECONDS (default 3600) and export checkpoints "
            "(`bastion audit checkpoint export`) to a party outside this system.",
        )
    elif interval > MAX_CHECKPOINT_INTERVAL_SECONDS:
        yield Finding(
            "audit_checkpoints_rare",
            Severity.LOW,
            "Audit checkpoints are signed less than daily: more of the trail is unpinned.",
            "Lower BASTION_AUDIT_CHECKPOINT_INTERVAL_SECONDS to 86400 or less.",
        )
    if settings.audit_retention_days == 0:
        yield Finding(
            "audit_retention_off",
            Severity.LOW,
            "Audit events are kept forever: personal data (IP addresses, user agents) is held "
            "longer than any investigation needs, and the table grows without bound.",
            "Set BASTION_AUDIT_RETENTION_DAYS (default 365) to your retention policy.",
        )
    if not (settings.audit_log_sink or settings.audit_export_file or settings.audit_syslog_url):
        # docs/operations.md suggests turning the stdout line off when a file or syslog ships
        # the events: with neither, nothing does.
        yield Finding(
            "audit_siem_copy_off",
            Severity.MEDIUM,
            "Audit events are stored only in Bastion's database: no copy leaves the service for "
            "a SIEM, so nobody outside sees them as they happen, and whoever controls the "
            "database controls the only record.",
            "Set BASTION_AUDIT_LOG_SINK=true (the default), BASTION_AUDIT_EXPORT_FILE or "
            "BASTION_AUDIT_SYSLOG_URL, and ship that copy off the host.",
        )
    if settings.audit_syslog_url:
        yield from _syslog(settings.audit_syslog_url)


def _syslog(url: str) -> Iterator[Finding]:
    try:
        transport, _, _ = parse_syslog_url(url)
    except ValueError:
        yield Finding(
            "audit_syslog_url_invalid",
            Severity.HIGH,
            "BASTION_AUDIT_SYSLOG_URL is not udp://host:port or tcp://host:port: the service "
            "cannot start its SIEM export.",
            "Fix BASTION_AUDIT_SYSLOG_URL.",
            blocks_production=True,
        )
        return
    if transport == "udp":
        yield Finding(
            "audit_syslog_udp",
            Severity.INFO,
            "Audit events go to syslog over UDP: datagrams can be lost or spoofed on the way.",
            "Prefer tcp:// to a collector on a trusted network (or the export file shipped by "
            "an agent over TLS).",
        )
