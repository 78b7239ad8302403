"""Detectors on login attempts: brute force, credential stuffing, password spraying.

- **Brute force**: many guesses at one account (any IPs) within a window: failed logins,
  logins refused by the backoff, wrong second factors (counted apart from passwords).
- **Credential stuffing**: one IP failing on many distinct accounts quickly (a leaked
  email/password list replayed); or, across all IPs, many failures from many IPs with a very low
  success ratio (the same list spread over a botnet).
- **Password spraying**: one network (IPv4 /24, IPv6 /48) failing with a *wrong password* on
  many *existing* accounts, with few attempts per account (one or two common passwords tried
  everywhere, slowly enough to stay under per-account lockouts). Bastion never records the
  password, so "the same password" is approximated by this shape.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.audit.events import EventType
from bastion.audit.interfaces import StoredEvent
from bastion.monitoring.alerts import Alert, Detector, Severity
from bastion.monitoring.detectors._common import (
    account_of,
    evidence,
    network_of,
    part,
    when,
)
from bastion.monitoring.interfaces import CounterStore
from bastion.monitoring.settings import BruteForceSettings, SprayingSettings, StuffingSettings

#: The login failure reason of an existing account with a wrong password.
WRONG_PASSWORD = "wrong_password"  # noqa: S105 - a reason code, not a password
GLOBAL_EVIDENCE_KEY = "cs:g:fail"


#: Guesses at one account: wrong passwords, guesses refused by the backoff before the password
#: was even checked (an attacker hammering a locked account), wrong second factors.
GUESSES = {
    EventType.IDENTITY_LOGIN_FAILED: "password",
    EventType.IDENTITY_LOGIN_THROTTLED: "password",
    EventType.IDENTITY_MFA_FAILED: "second_factor",
}


class BruteForceDetector:
    event_types = frozenset(GUESSES)

    def __init__(self, store: CounterStore, settings: BruteForceSettings) -> None:
        self._store = store
        self._s = settings

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]:
        event = stored.event
        factor = GUESSES.get(event.type)
        account = account_of(event) if factor else None
        if factor is None or account is None:
            return ()
        now, window = when(event), self._s.window_seconds
        key = f"bf:{factor}:{account}"
        failures = await self._store.touch(key, str(stored.seq), now, window)
        if failures < self._s.threshold:
            return ()
        what = "login" if factor == "password" else "second-factor"
        return (
            Alert(
                Detector.BRUTE_FORCE,
                Severity.HIGH,
                f"{failures} failed or throttled {what} attempts on one account within "
                f"{window:g} s.",
                key=f"{factor}:{account}",
                time=event.time,
                evidence=await evidence(self._store, key, now, window),
                subject=event.subject,
                client_ip=event.client_ip,
                details={"account_ref": account, "factor": factor, "failures": failures},
            ),
        )


class CredentialStuffingDetector:
    event_types = frozenset({EventType.IDENTITY_LOGIN_SUCCEEDED, EventType.IDENTITY_LOGIN_FAILED})

    def __init__(self, store: CounterStore, settings: StuffingSettings) -> None:
        self._store = store
        self._s = settings

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]:
        event = stored.event
        now, gw = when(event), self._s.global_window_seconds
        if event.type is EventType.IDENTITY_LOGIN_SUCCEEDED:
            await self._store.touch("cs:g:ok", str(stored.seq), now, gw)
            return ()
        if event.type is not EventType.IDENTITY_LOGIN_FAILED:
            return ()
        alerts: list[Alert] = []
        account = account_of(event)
        ip = event.client_ip
        if ip and account:
            alert = await self._one_ip(stored, part(ip), account)
            if alert is not None:
                alerts.append(alert)
        alert = await self._everyone(stored, part(ip) if ip else "-")
        if alert is not None:
            alerts.append(alert)
        return alerts

    async def _one_ip(self, stored: StoredEvent, ip: str, account: str) -> Alert | None:
        event = stored.event
        now, window = when(event), self._s.window_seconds
        accounts = await self._store.touch(f"cs:ip:{ip}:acct", account, now, window)
        await self._store.touch(f"cs:ip:{ip}:ev", str(stored.seq), now, window)
        if accounts < self._s.accounts_per_ip:
            return None
        return Alert(
            Detector.CREDENTIAL_STUFFING,
            Severity.HIGH,
            f"One IP failed to log in to {accounts} different accounts within {window:g} s.",
            key=f"ip:{ip}",
            time=event.time,
            evidence=await evidence(self._store, f"cs:ip:{ip}:ev", now, window),
            client_ip=event.client_ip,
            details={"signal": "one_ip", "accounts": accounts},
        )

    async def _everyone(self, stored: StoredEvent, ip: str) -> Alert | None:
        event = stored.event
        now, window = when(event), self._s.global_window_seconds
        failures = await self._store.touch(GLOBAL_EVIDENCE_KEY, str(stored.seq), now, window)
        ips = await self._store.touch("cs:g:ips", ip, now, window)
        if failures < self._s.global_min_attempts or ips < self._s.global_min_ips:
            return None
        successes = len(await self._store.members("cs:g:ok", now, window))
        ratio = successes / (successes + failures)
        if ratio > self._s.global_max_success_ratio:
            return None
        return Alert(
            Detector.CREDENTIAL_STUFFING,
            Severity.HIGH,
            f"{failures} failed logins from {ips} IPs within {window:g} s; success ratio "
            f"{ratio:.1%}.",
            key="global",
            time=event.time,
            evidence=await evidence(self._store, GLOBAL_EVIDENCE_KEY, now, window),
            details={
                "signal": "low_success_ratio",
                "failures": failures,
                "successes": successes,
                "ips": ips,
            },
        )


class PasswordSprayingDetector:
    event_types = frozenset({EventType.IDENTITY_LOGIN_FAILED})

    def __init__(self, store: CounterStore, settings: SprayingSettings) -> None:
        self._store = store
        self._s = settings

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]:
        event = stored.event
        if event.type is not EventType.IDENTITY_LOGIN_FAILED or event.reason != WRONG_PASSWORD:
            return ()
        network = network_of(event.client_ip)
        account = account_of(event)
        if network is None or account is None:
            return ()
        now, window = when(event), self._s.window_seconds
        net = part(network)
        accounts = await self._store.touch(f"ps:{net}:acct", account, now, window)
        attempts = await self._store.touch(f"ps:{net}:ev", str(stored.seq), now, window)
        per_account = attempts / accounts
        if accounts < self._s.accounts or per_account > self._s.max_attempts_per_account:
            return ()
        return (
            Alert(
                Detector.PASSWORD_SPRAYING,
                Severity.HIGH,
                f"Network {network} tried {accounts} existing accounts ({per_account:.1f} "
                f"attempts each) within {window:g} s.",
                key=f"net:{net}",
                time=event.time,
                evidence=await evidence(self._store, f"ps:{net}:ev", now, window),
                client_ip=event.client_ip,
                details={"network": network, "accounts": accounts, "attempts": attempts},
            ),
        )
