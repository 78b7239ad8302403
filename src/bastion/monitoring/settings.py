"""Settings of the detectors and alert delivery (nested group ``monitoring``).

``BASTION_MONITORING__BRUTE_FORCE__THRESHOLD=20`` sets one threshold;
``BASTION_MONITORING__WEBHOOKS='[{"name": "siem", "url": "https://...", "secret": "..."}]'``
configures the webhooks (their URLs go through :mod:`bastion.outbound`).
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bastion.monitoring.alerts import Severity

MINUTE = 60
HOUR = 3600
DAY = 86_400
#: An HMAC key shorter than this is guessable offline from one signed request (`bastion check`).
MIN_WEBHOOK_SECRET_CHARS = 32

_Frozen = ConfigDict(frozen=True, extra="forbid")


class BruteForceSettings(BaseModel):
    """Failed logins on one account (from any IPs) within the window."""

    model_config = _Frozen
    enabled: bool = True
    threshold: int = Field(default=10, ge=2, le=100_000)
    window_seconds: float = Field(default=15 * MINUTE, gt=0, le=DAY)


class StuffingSettings(BaseModel):
    """One IP failing on many accounts; or many IPs with a very low login success ratio."""

    model_config = _Frozen
    enabled: bool = True
    accounts_per_ip: int = Field(default=20, ge=2, le=100_000)
    window_seconds: float = Field(default=10 * MINUTE, gt=0, le=DAY)
    global_min_attempts: int = Field(default=200, ge=10, le=10_000_000)
    global_min_ips: int = Field(default=20, ge=2, le=10_000_000)
    global_max_success_ratio: float = Field(default=0.05, ge=0, lt=1)
    global_window_seconds: float = Field(default=15 * MINUTE, gt=0, le=DAY)


class SprayingSettings(BaseModel):
    """One network (IPv4 /24, IPv6 /48: an approximation of one origin without ASN data)
    failing on many *existing* accounts with few attempts each."""

    model_config = _Frozen
    enabled: bool = True
    accounts: int = Field(default=10, ge=2, le=100_000)
    max_attempts_per_account: float = Field(default=2.0, ge=1, le=100)
    window_seconds: float = Field(default=HOUR, gt=0, le=7 * DAY)


class DenialBurstSettings(BaseModel):
    """Authorization denials (403) and rate-limit refusals (429) from one actor or IP."""

    model_config = _Frozen
    enabled: bool = True
    threshold: int = Field(default=30, ge=2, le=1_000_000)
    window_seconds: float = Field(default=MINUTE, gt=0, le=DAY)


class AdminHoursSettings(BaseModel):
    """Administrative actions are expected from ``start_hour`` to ``end_hour`` (local time in
    ``timezone``) on ``days`` (0 = Monday). Off until ``enabled``: hours are site-specific."""

    model_config = _Frozen
    enabled: bool = False
    start_hour: int = Field(default=8, ge=0, le=23)
    end_hour: int = Field(default=19, ge=1, le=24)
    days: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(day not in range(7) for day in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return value

    @model_validator(mode="after")
    def _order(self) -> AdminHoursSettings:
        if self.start_hour >= self.end_hour:
            raise ValueError("start_hour must be before end_hour")
        return self


class NewDeviceSettings(BaseModel):
    """A login from a browser or network (IPv4 /24, IPv6 /48) the account has not used within
    ``remember_days``; the user is mailed when ``notify_user``."""

    model_config = _Frozen
    enabled: bool = True
    notify_user: bool = True
    remember_days: int = Field(default=90, ge=1, le=3650)


class WebhookSettings(BaseModel):
    """One webhook endpoint; alerts of ``min_severity`` and above are POSTed to it, signed."""

    model_config = _Frozen
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    url: str = Field(min_length=8, max_length=2048)
    secret: SecretStr
    min_severity: Severity = Severity.LOW


class MonitoringSettings(BaseModel):
    """Detectors on the audit event stream, and where their alerts go."""

    model_config = _Frozen

    detectors_enabled: bool = True
    counters: Literal["auto", "memory", "redis"] = Field(
        default="auto",
        description="auto: Redis when rate limiting uses Redis (counters shared by workers).",
    )
    queue_size: int = Field(default=10_000, ge=10, le=1_000_000)
    cooldown_seconds: float = Field(default=15 * MINUTE, ge=0, le=7 * DAY)
    memory_max_keys: int = Field(default=100_000, ge=100, le=10_000_000)
    brute_force: BruteForceSettings = Field(default_factory=BruteForceSettings)
    credential_stuffing: StuffingSettings = Field(default_factory=StuffingSettings)
    password_spraying: SprayingSettings = Field(default_factory=SprayingSettings)
    denial_burst: DenialBurstSettings = Field(default_factory=DenialBurstSettings)
    admin_hours: AdminHoursSettings = Field(default_factory=AdminHoursSettings)
    new_device: NewDeviceSettings = Field(default_factory=NewDeviceSettings)

    webhooks: list[WebhookSettings] = Field(default_factory=list, max_length=20)
    webhook_max_attempts: int = Field(default=6, ge=1, le=20)
    webhook_base_delay_seconds: float = Field(default=2.0, gt=0, le=600)
    webhook_max_delay_seconds: float = Field(default=600.0, gt=0, le=DAY)
    alert_emails: list[str] = Field(default_factory=list, max_length=20)
    email_min_severity: Severity = Severity.HIGH

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or len(address) > 320 or any(c in address for c in "\r\n"):
                raise ValueError(f"not an email address: {address!r}")
        return value

    @model_validator(mode="after")
    def _unique_webhooks(self) -> MonitoringSettings:
        names = [w.name for w in self.webhooks]
        if len(names) != len(set(names)):
            raise ValueError("webhook names must be unique")
        return self
