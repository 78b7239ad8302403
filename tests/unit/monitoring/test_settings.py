"""Monitoring settings refuse inconsistent values at startup."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.monitoring.settings import AdminHoursSettings, MonitoringSettings, WebhookSettings


@pytest.mark.parametrize(
    "values",
    [
        {"timezone": "Mars/Olympus"},
        {"start_hour": 19, "end_hour": 8},
        {"days": [7]},
    ],
)
def test_bad_admin_hours_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AdminHoursSettings(**values)


def test_webhook_names_are_unique_and_secrets_hidden() -> None:
    hook = WebhookSettings(name="soc", url="https://soc.example.com/", secret="s" * 40)
    assert "s" * 40 not in repr(hook)
    with pytest.raises(ValidationError):
        MonitoringSettings(webhooks=[hook, hook])


def test_alert_emails_must_be_addresses_without_header_injection() -> None:
    with pytest.raises(ValidationError):
        MonitoringSettings(alert_emails=["soc@example.com\r\nBcc: all@example.com"])
    with pytest.raises(ValidationError):
        MonitoringSettings(alert_emails=["not-an-address"])
