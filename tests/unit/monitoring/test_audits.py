"""`bastion check` findings for monitoring and the outbound client."""

from __future__ import annotations

import pytest

from bastion.checks import Severity, run_all
from bastion.config import InsecureConfigError, Settings
from bastion.config.production import enforce
from bastion.monitoring.settings import BruteForceSettings, MonitoringSettings, WebhookSettings
from bastion.outbound import OutboundSettings

GOOD_SECRET = "g" * 40
PROD = {"env": "production", "secret_key": "k" * 48, "docs_enabled": False}


def codes(settings: Settings) -> dict[str, Severity]:
    return {f.code: f.severity for f in run_all(settings)}


def _hook(url: str = "https://soc.example.com/hook", secret: str = GOOD_SECRET) -> WebhookSettings:
    return WebhookSettings(name="soc", url=url, secret=secret)


def test_defaults_have_no_monitoring_or_outbound_finding() -> None:
    found = codes(Settings())
    assert not [c for c in found if c.startswith(("monitoring_", "outbound_"))]


def test_a_short_webhook_secret_is_high_and_blocks_production() -> None:
    mon = MonitoringSettings(webhooks=[_hook(secret="short-secret")])
    assert codes(Settings(monitoring=mon))["monitoring_webhook_secret_short_soc"] is Severity.HIGH
    with pytest.raises(InsecureConfigError):
        enforce(Settings(monitoring=mon, **PROD))


def test_http_webhooks_and_http_outbound_are_reported() -> None:
    mon = MonitoringSettings(webhooks=[_hook(url="http://soc.example.com:80/hook")])
    out = OutboundSettings(allow_http=True, allowed_ports=[443, 80])
    found = codes(Settings(monitoring=mon, outbound=out))
    assert found["monitoring_webhook_http_soc"] is Severity.MEDIUM
    assert found["outbound_http_allowed"] is Severity.MEDIUM
    assert "monitoring_webhook_url_refused_soc" not in found


def test_a_webhook_url_the_client_refuses_is_high() -> None:
    for url in ("http://soc.example.com/hook", "https://user@soc.example.com/", "https://127.1/"):
        found = codes(Settings(monitoring=MonitoringSettings(webhooks=[_hook(url=url)])))
        assert found["monitoring_webhook_url_refused_soc"] is Severity.HIGH, url


def test_loopback_outside_tests_is_high_and_refused_in_production() -> None:
    out = OutboundSettings(allow_loopback_for_tests=True)
    assert codes(Settings(outbound=out))["outbound_loopback_allowed"] is Severity.HIGH
    assert "outbound_loopback_allowed" not in codes(Settings(env="test", outbound=out))
    with pytest.raises(InsecureConfigError):
        enforce(Settings(outbound=out, **PROD))


def test_detectors_off_are_reported() -> None:
    assert (
        codes(Settings(monitoring=MonitoringSettings(detectors_enabled=False)))[
            "monitoring_detectors_off"
        ]
        is Severity.MEDIUM
    )
    one_off = MonitoringSettings(brute_force=BruteForceSettings(enabled=False))
    assert codes(Settings(monitoring=one_off))["monitoring_brute_force_off"] is Severity.LOW


def test_production_without_any_alert_destination_is_reported() -> None:
    assert codes(Settings(**PROD))["monitoring_no_alert_destination"] is Severity.LOW
    mon = MonitoringSettings(alert_emails=["soc@example.com"])
    assert "monitoring_no_alert_destination" not in codes(Settings(monitoring=mon, **PROD))
