"""Helpers shared by the detectors: event times, account and network keys, evidence."""

from __future__ import annotations

import hashlib
import ipaddress

from bastion.audit.events import AuditEvent
from bastion.monitoring.interfaces import CounterStore

#: Most evidence sequence numbers one alert carries (the newest).
MAX_EVIDENCE = 100
#: Parts of a counter key longer than this are hashed (keys must stay bounded).
_MAX_PART_CHARS = 80
IPV4_NETWORK_PREFIX = 24
IPV6_NETWORK_PREFIX = 48


def when(event: AuditEvent) -> float:
    return event.time.timestamp()


def part(value: str) -> str:
    """``value`` as one bounded counter-key component (attacker-influenced text is hashed)."""
    if len(value) <= _MAX_PART_CHARS and value.isprintable() and ":" not in value:
        return value
    return "h" + hashlib.blake2b(value.encode("utf-8", "replace"), digest_size=16).hexdigest()


def account_of(event: AuditEvent) -> str | None:
    """The targeted account: the email reference of a login attempt, else the subject."""
    ref = event.details.get("email_ref") if event.details else None
    if isinstance(ref, str) and ref:
        return part(ref)
    return part(event.subject) if event.subject else None


def network_of(ip: str | None) -> str | None:
    """The client's network: IPv4 /24, IPv6 /48 (one origin, approximated without ASN data)."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = IPV4_NETWORK_PREFIX if address.version == 4 else IPV6_NETWORK_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


async def evidence(store: CounterStore, key: str, now: float, window: float) -> tuple[int, ...]:
    """The sequence numbers kept in the set ``key`` (newest ``MAX_EVIDENCE``), ascending."""
    seqs = sorted(int(m) for m in await store.members(key, now, window) if m.isdigit())
    return tuple(seqs[-MAX_EVIDENCE:])
