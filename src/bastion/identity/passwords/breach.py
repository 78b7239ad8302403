"""Breach-corpus checks: Have I Been Pwned's range API (k-anonymity), and an in-memory corpus.

HIBP protocol (https://haveibeenpwned.com/API/v3#PwnedPasswords): SHA-1 the password, send only
the first 5 hex characters, get back every suffix in that range with its count, and look for
ours locally. The service never sees the password or its full hash; with ``Add-Padding: true``
each answer is padded with fake zero-count suffixes, so even the answer's size tells a network
observer nothing about the range. SHA-1 here is the protocol's lookup key, not protection of a
stored secret.

Off by default (``PasswordSettings.breach_check``): it sends data to a third party and needs
outbound internet access. The local common-password list applies either way.

The URL comes from configuration, so the request goes through the SSRF-safe
:class:`~bastion.outbound.OutboundClient` like every other request Bastion makes to a configured
address: https only, private and metadata addresses refused after resolution, no redirects, no
proxy variables, the answer's size and time bounded.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Protocol

from bastion.identity.passwords.errors import BreachCheckUnavailable
from bastion.identity.passwords.normalization import password_bytes
from bastion.identity.passwords.settings import PasswordSettings
from bastion.outbound import OutboundClient, OutboundError, OutboundResponse, OutboundSettings

__all__ = [
    "HIBP_PREFIX_CHARS",
    "HibpBreachChecker",
    "InMemoryBreachChecker",
    "RangeFetcher",
    "sha1_hex",
]

HIBP_PREFIX_CHARS = 5
#: A padded answer is 800-1,000 lines of 35-40 bytes; refuse to buffer more than this.
MAX_RESPONSE_BYTES = 512 * 1024
USER_AGENT = "bastion-password-policy"
HTTP_OK = 200


def sha1_hex(password: str) -> str:
    """Upper-case SHA-1 hex of the NFKC-normalised UTF-8 password (HIBP's key format)."""
    return hashlib.sha1(password_bytes(password), usedforsecurity=False).hexdigest().upper()


class RangeFetcher(Protocol):
    """What the checker needs of an HTTP client: :class:`~bastion.outbound.OutboundClient`."""

    async def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, follow_redirects: bool = False
    ) -> OutboundResponse: ...

    async def aclose(self) -> None: ...


class HibpBreachChecker:
    """:class:`~bastion.identity.passwords.interfaces.BreachChecker` over the HIBP range API."""

    def __init__(
        self,
        *,
        base_url: str = "https://api.pwnedpasswords.com/range/",
        timeout_seconds: float = 2.0,
        client: RangeFetcher | None = None,
    ) -> None:
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._owns_client = client is None
        self._client: RangeFetcher = client or OutboundClient(
            OutboundSettings(
                max_response_bytes=MAX_RESPONSE_BYTES,
                connect_timeout_seconds=timeout_seconds,
                read_timeout_seconds=timeout_seconds,
                total_timeout_seconds=timeout_seconds,
                resolve_timeout_seconds=timeout_seconds,
            )
        )

    @classmethod
    def from_settings(
        cls, settings: PasswordSettings, client: RangeFetcher | None = None
    ) -> HibpBreachChecker:
        return cls(
            base_url=settings.breach_check_url,
            timeout_seconds=settings.breach_check_timeout_seconds,
            client=client,
        )

    @property
    def client(self) -> RangeFetcher:
        return self._client

    async def is_breached(self, password: str) -> bool:
        digest = sha1_hex(password)
        prefix, suffix = digest[:HIBP_PREFIX_CHARS], digest[HIBP_PREFIX_CHARS:]
        body = await self._fetch(prefix)
        for line in body.splitlines():
            candidate, _, count = line.strip().partition(":")
            # Padding lines have a count of 0 and never match a real password.
            if count.strip() not in ("", "0") and hmac.compare_digest(
                candidate.upper().encode(), suffix.encode()
            ):
                return True
        return False

    async def _fetch(self, prefix: str) -> str:
        headers = {"Add-Padding": "true", "User-Agent": USER_AGENT}
        try:
            # Redirects are never followed: a 3xx is an unusable answer like any other.
            response = await self._client.get(self._base_url + prefix, headers=headers)
        except OutboundError:
            raise BreachCheckUnavailable from None
        if response.status != HTTP_OK or len(response.body) > MAX_RESPONSE_BYTES:
            raise BreachCheckUnavailable
        return response.body.decode("ascii", errors="replace")

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class InMemoryBreachChecker:
    """A :class:`~bastion.identity.passwords.interfaces.BreachChecker` over a fixed corpus
    (tests, air-gapped deployments with a downloaded list)."""

    def __init__(self, passwords: Iterable[str] = ()) -> None:
        self._hashes = {sha1_hex(p) for p in passwords}

    @classmethod
    def from_sha1_hashes(cls, hashes: Iterable[str]) -> InMemoryBreachChecker:
        checker = cls()
        checker._hashes = {h.strip().upper() for h in hashes}
        return checker

    async def is_breached(self, password: str) -> bool:
        return sha1_hex(password) in self._hashes
