"""Detectors on sessions and actions: refresh-token reuse, bursts of denials, administrative
actions outside working hours, logins from a new device or network."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bastion.audit.events import EventType
from bastion.audit.interfaces import StoredEvent
from bastion.monitoring.alerts import Alert, Detector, Severity
from bastion.monitoring.detectors._common import evidence, network_of, part, when
from bastion.monitoring.interfaces import CounterStore
from bastion.monitoring.settings import (
    DAY,
    AdminHoursSettings,
    DenialBurstSettings,
    NewDeviceSettings,
)

#: Refusals a client receives as 403 (authorization, CSRF) or 429 (limits, backoff). Rate-limit
#: crossings are recorded once per window and key, throttled logins and MFA on every attempt.
DENIALS = frozenset(
    {
        EventType.AUTHZ_CHECK_DENIED,
        EventType.AUTHZ_API_FORBIDDEN,
        EventType.HTTP_CSRF_REJECTED,
        EventType.RATELIMIT_LIMIT_EXCEEDED,
        EventType.IDENTITY_LOGIN_THROTTLED,
        EventType.IDENTITY_MFA_THROTTLED,
    }
)

#: Actions an administrator takes on other accounts, on authorization policy, keys or the trail.
ADMIN_ACTIONS = frozenset(
    {
        EventType.IDENTITY_ACCOUNT_DISABLED,
        EventType.IDENTITY_ACCOUNT_ENABLED,
        EventType.IDENTITY_ACCOUNT_UNLOCKED,
        EventType.IDENTITY_PASSWORD_RESET_FORCED,
        EventType.IDENTITY_MFA_RESET,
        EventType.IDENTITY_SESSION_REVOKED,
        EventType.AUTHZ_STORE_CREATED,
        EventType.AUTHZ_STORE_DELETED,
        EventType.AUTHZ_MODEL_WRITTEN,
        EventType.AUTHZ_TUPLES_WRITTEN,
        EventType.TOKEN_SIGNING_KEY_ROTATED,
        EventType.AUDIT_EVENTS_SEARCHED,
        EventType.AUDIT_EVENTS_PURGED,
    }
)
MAX_USER_AGENT_CHARS = 200
#: Pseudonyms remembered per detector and kind (user agents, client IPs): most logins come from
#: a few browsers and addresses, and a login pays for neither the network's parse nor the HMAC
#: again. Bounded (attackers choose both): full, the memo starts over.
MAX_REMEMBERED_PSEUDONYMS = 1024


class RefreshReuseDetector:
    """Every replayed refresh token is an alert: the token was stolen or the client is broken."""

    event_types = frozenset({EventType.TOKEN_REFRESH_REUSE_DETECTED})

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]:
        event = stored.event
        if event.type is not EventType.TOKEN_REFRESH_REUSE_DETECTED:
            return ()
        session = event.details.get("session_id") if event.details else None
        return (
            Alert(
                Detector.REFRESH_TOKEN_REUSE,
                Severity.HIGH,
                "A rotated refresh token was presented again; the session was revoked.",
                key=part(str(session or event.subject or stored.seq)),
                time=event.time,
                evidence=(stored.seq,),
                subject=event.subject,
                client_ip=event.client_ip,
                details={"session_id": session},
            ),
        )


class DenialBurstDetector:
    event_types = DENIALS

    def __init__(self, store: CounterStore, settings: DenialBurstSettings) -> None:
        self._store = store
        self._s = settings

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]:
        event = stored.event
        if event.type not in DENIALS:
            return ()
        who = event.actor or (f"ip:{event.client_ip}" if event.client_ip else None)
        if who is None:
            return ()
        if event.type is EventType.AUTHZ_CHECK_DENIED and not _refused_itself(stored):
            # A service asking the engine about other users (the OpenFGA API) is answered, not
            # refused: its "denied" answers are its job, not a burst of 403s.
            return ()
        now, window = when(event), self._s.window_seconds
        key = f"db:{part(who)}"
        count = await self._store.touch(key, str(stored.seq), now, window)
        # One alert at the threshold, then one per further threshold's worth: gathering the
        # evidence reads the whole window, which must not happen on every refusal of a flood.
        if count < self._s.threshold or count % self._s.threshold:
            return ()
        return (
            Alert(
                Detector.DENIAL_BURST,
                Severity.MEDIUM,
                f"{count} refused requests (403/429) from one actor within {window:g} s.",
                key=part(who),
                time=event.time,
                evidence=await evidence(self._store, key, now, window),
                actor=event.actor,
                client_ip=event.client_ip,
                details={"denials": count},
            ),
        )


def _refused_itself(stored: StoredEvent) -> bool:
    """A denied decision about the actor's own access (Bastion's routes, an SDK ``require``)."""
    details = stored.event.details
    return bool(details) and details.get("user") == stored.event.actor


class AdminOffHoursDetector:
    event_types = ADMIN_ACTIONS

    def __init__(self, settings: AdminHoursSettings) -> None:
        self._s = settings
        self._zone = ZoneInfo(settings.timezone)

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]:
        event = stored.event
        # Acting on someone else: a user revoking their own session is not an admin action.
        if event.type not in ADMIN_ACTIONS or not event.actor or event.actor == event.subject:
            return ()
        local = event.time.astimezone(self._zone)
        if local.weekday() in self._s.days and self._s.start_hour <= local.hour < self._s.end_hour:
            return ()
        return (
            Alert(
                Detector.ADMIN_OFF_HOURS,
                Severity.MEDIUM,
                f"Administrative action {event.type.value} by {event.actor} at "
                f"{local.isoformat(timespec='minutes')}, outside the configured hours.",
                key=part(event.actor),
                time=event.time,
                evidence=(stored.seq,),
                actor=event.actor,
                subject=event.subject,
                client_ip=event.client_ip,
                details={"action": event.type.value, "local_time": local.isoformat()},
            ),
        )


def _new_login_summary(*, new_device: bool, new_network: bool) -> str:
    what = [name for name, new in (("device", new_device), ("network", new_network)) if new]
    return f"Login from a new {' and a new '.join(what)}."


class NewDeviceDetector:
    """Remembers, per account, keyed pseudonyms of the browsers (user agent) and networks
    (IPv4 /24, IPv6 /48) it logged in from; a login from a new one is an alert, except for an
    account with no remembered login yet (nothing to compare with: learn silently)."""

    event_types = frozenset({EventType.IDENTITY_LOGIN_SUCCEEDED})

    def __init__(self, store: CounterStore, settings: NewDeviceSettings, key: bytes) -> None:
        self._store = store
        self._s = settings
        self._key = key
        self._devices: dict[str, str] = {}
        self._networks: dict[str | None, str] = {}

    def _pseudonym(self, kind: str, value: str) -> str:
        # Keyed: the counters never hold user agents or addresses, nor guessable hashes of them.
        mac = hmac.new(self._key, f"{kind}\x00{value}".encode("utf-8", "replace"), hashlib.sha256)
        return mac.hexdigest()[:24]

    def _device(self, agent: str) -> str:
        device = self._devices.get(agent)
        if device is None:
            if len(self._devices) >= MAX_REMEMBERED_PSEUDONYMS:
                self._devices.clear()
            device = self._devices[agent] = self._pseudonym("device", agent)
        return device

    def _network(self, ip: str | None) -> str:
        network = self._networks.get(ip)
        if network is None:
            if len(self._networks) >= MAX_REMEMBERED_PSEUDONYMS:
                self._networks.clear()
            network = self._pseudonym("network", network_of(ip) or "-")
            self._networks[ip] = network
        return network

    async def observe(self, stored: StoredEvent) -> Sequence[Alert]:
        event = stored.event
        if event.type is not EventType.IDENTITY_LOGIN_SUCCEEDED or not event.subject:
            return ()
        user = part(event.subject)
        now, ttl = when(event), self._s.remember_days * DAY
        agent = (event.user_agent or "")[:MAX_USER_AGENT_CHARS]
        device = self._device(agent)
        network = self._network(event.client_ip)
        known_account = await self._store.seen(f"nd:{user}", now, ttl, refresh=True)
        known_device = await self._store.seen(f"nd:{user}:d:{device}", now, ttl, refresh=True)
        known_network = await self._store.seen(f"nd:{user}:n:{network}", now, ttl, refresh=True)
        if not known_account or (known_device and known_network):
            return ()
        user_id = event.subject.removeprefix("user:")
        return (
            Alert(
                Detector.NEW_DEVICE_LOGIN,
                Severity.LOW,
                _new_login_summary(new_device=not known_device, new_network=not known_network),
                key=f"{user}:{device}:{network}",
                time=event.time,
                evidence=(stored.seq,),
                subject=event.subject,
                client_ip=event.client_ip,
                details={
                    "user_id": user_id,
                    "new_device": not known_device,
                    "new_network": not known_network,
                    "user_agent": agent,
                    "notify_user": self._s.notify_user,
                },
            ),
        )
