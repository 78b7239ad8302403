"""Prometheus series derived from the audit event stream, plus the monitoring pipeline's own.

:class:`SecurityMetrics` subscribes to stored audit events and counts, per process (Prometheus
sums the workers): login failures by reason, lockouts, throttled logins, MFA failures,
refresh-token reuse, authorization denials, CSRF rejections, rate-limit crossings; and alerts
by detector and severity, alert deliveries by channel and outcome, and detector events dropped
or not evaluated. The request path does nothing: counting happens in the audit writer task, and
the families are built at scrape time. Label values come from fixed vocabularies (unknown
reasons become ``other``), so the series stay bounded whatever clients send. Rate-limit refusals
per request are ``bastion_ratelimit_exceeded`` (protections); audit queue depth and drops are
``bastion_audit_queue_depth`` and ``bastion_audit_events_dropped`` (ops).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bastion.audit.events import EventType
from bastion.audit.interfaces import StoredEvent
from bastion.monitoring.alerts import Alert, Detector, Severity

#: Login failure reasons recorded by the identity package; anything else counts as "other".
LOGIN_FAILURE_REASONS = frozenset(
    {"unknown_account", "wrong_password", "disabled", "unverified", "no_password"}
)

_SIMPLE: dict[EventType, str] = {
    EventType.IDENTITY_ACCOUNT_LOCKED: "lockouts",
    EventType.IDENTITY_LOGIN_THROTTLED: "login_throttled",
    EventType.IDENTITY_MFA_FAILED: "mfa_failures",
    EventType.IDENTITY_WEBAUTHN_FAILED: "mfa_failures",
    EventType.TOKEN_REFRESH_REUSE_DETECTED: "refresh_reuse",
    EventType.AUTHZ_CHECK_DENIED: "authz_denials",
    EventType.AUTHZ_API_FORBIDDEN: "authz_denials",
    EventType.HTTP_CSRF_REJECTED: "csrf_rejections",
    EventType.RATELIMIT_LIMIT_EXCEEDED: "ratelimit_crossings",
}

_HELP: dict[str, tuple[str, str]] = {
    "lockouts": ("bastion_account_lockouts", "Accounts locked by the failed-login backoff."),
    "login_throttled": (
        "bastion_login_throttled",
        "Login attempts refused by the backoff before the password check.",
    ),
    "mfa_failures": ("bastion_mfa_failures", "Wrong second factors (TOTP, recovery, passkey)."),
    "refresh_reuse": (
        "bastion_refresh_token_reuse",
        "Rotated refresh tokens presented again (sessions revoked).",
    ),
    "authz_denials": ("bastion_authorization_denials", "Authorization checks that denied."),
    "csrf_rejections": ("bastion_csrf_rejections", "Requests refused by the CSRF checks."),
    "ratelimit_crossings": (
        "bastion_ratelimit_crossings",
        "Rate-limit crossings recorded in the audit trail (once per window and key).",
    ),
}


class SecurityMetrics(Collector):
    """An audit subscriber and a Prometheus collector (register it on the app's registry)."""

    def __init__(self) -> None:
        self._events: Counter[str] = Counter()
        self._login_failures: Counter[str] = Counter()
        self._alerts: Counter[tuple[str, str]] = Counter()
        self._deliveries: Counter[tuple[str, str]] = Counter()
        self.detector_dropped = 0
        self.detector_errors = 0

    #: The events :meth:`on_stored` counts (the audit sink may leave the others out).
    event_types = frozenset({*_SIMPLE, EventType.IDENTITY_LOGIN_FAILED})

    # -- inputs -----------------------------------------------------------------------------
    def on_stored(self, events: Sequence[StoredEvent]) -> None:
        for stored in events:
            event = stored.event
            if event.type is EventType.IDENTITY_LOGIN_FAILED:
                reason = event.reason if event.reason in LOGIN_FAILURE_REASONS else "other"
                self._login_failures[reason or "other"] += 1
            else:
                name = _SIMPLE.get(event.type)
                if name is not None:
                    self._events[name] += 1

    def alert(self, alert: Alert) -> None:
        self._alerts[alert.detector.value, alert.severity.value] += 1

    def delivery(self, channel: str, outcome: str) -> None:
        self._deliveries[channel, outcome] += 1

    # -- scrape -----------------------------------------------------------------------------
    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())  # the label sets vary: let the registry call collect() instead

    def collect(self) -> Iterator[CounterMetricFamily]:
        failures = CounterMetricFamily(
            "bastion_login_failures", "Failed logins by reason.", labels=["reason"]
        )
        for reason in sorted(LOGIN_FAILURE_REASONS | {"other"}):
            failures.add_metric([reason], float(self._login_failures[reason]))
        yield failures
        for key, (name, text) in _HELP.items():
            yield CounterMetricFamily(name, text, value=float(self._events[key]))
        alerts = CounterMetricFamily(
            "bastion_alerts",
            "Alerts raised, by detector and severity.",
            labels=["detector", "severity"],
        )
        for detector in Detector:
            for severity in Severity:
                count = self._alerts[detector.value, severity.value]
                if count:
                    alerts.add_metric([detector.value, severity.value], float(count))
        yield alerts
        deliveries = CounterMetricFamily(
            "bastion_alert_deliveries",
            "Alert deliveries by channel and outcome.",
            labels=["channel", "outcome"],
        )
        for (channel, outcome), count in sorted(self._deliveries.items()):
            deliveries.add_metric([channel, outcome], float(count))
        yield deliveries
        yield CounterMetricFamily(
            "bastion_detector_events_dropped",
            "Audit events the detectors never saw (their queue was full).",
            value=float(self.detector_dropped),
        )
        yield CounterMetricFamily(
            "bastion_detector_errors",
            "Detector evaluations that failed (counter store unavailable).",
            value=float(self.detector_errors),
        )
