"""The detectors, built from :class:`~bastion.monitoring.settings.MonitoringSettings`."""

from __future__ import annotations

from bastion.monitoring.detectors.activity import (
    AdminOffHoursDetector,
    DenialBurstDetector,
    NewDeviceDetector,
    RefreshReuseDetector,
)
from bastion.monitoring.detectors.logins import (
    BruteForceDetector,
    CredentialStuffingDetector,
    PasswordSprayingDetector,
)
from bastion.monitoring.interfaces import CounterStore, EventDetector
from bastion.monitoring.settings import MonitoringSettings

__all__ = [
    "AdminOffHoursDetector",
    "BruteForceDetector",
    "CredentialStuffingDetector",
    "DenialBurstDetector",
    "NewDeviceDetector",
    "PasswordSprayingDetector",
    "RefreshReuseDetector",
    "build_detectors",
]


def build_detectors(
    settings: MonitoringSettings, store: CounterStore, pseudonym_key: bytes
) -> list[EventDetector]:
    """Every enabled detector (refresh-token reuse is always on while detectors are)."""
    s = settings
    detectors: list[EventDetector] = [RefreshReuseDetector()]
    if s.brute_force.enabled:
        detectors.append(BruteForceDetector(store, s.brute_force))
    if s.credential_stuffing.enabled:
        detectors.append(CredentialStuffingDetector(store, s.credential_stuffing))
    if s.password_spraying.enabled:
        detectors.append(PasswordSprayingDetector(store, s.password_spraying))
    if s.denial_burst.enabled:
        detectors.append(DenialBurstDetector(store, s.denial_burst))
    if s.admin_hours.enabled:
        detectors.append(AdminOffHoursDetector(s.admin_hours))
    if s.new_device.enabled:
        detectors.append(NewDeviceDetector(store, s.new_device, pseudonym_key))
    return detectors
