"""Breach-corpus checks: Have I Been Pwned's range API (k-anonymity), and an in-memory corpus.

HIBP protocol (https://haveibeenpwned.com/API/v3#PwnedPasswords): SHA-1 the password, send only
the first 5 hex characters, get back every suffix in that range with its count, and look for
ours locally. The service never sees the password or its full hash; with ``Add-Padding: true``
each answer is padded with fake zero-count suffixes, so even the answer's size tells a network
observer nothing about the range. SHA-1 here is the protocol's lookup key, not protection of a
stored secret.

Off by default (``PasswordSettings.breach_check``): it sends data to a third party and needs
outbound internet access. The local common-password list applies either way.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import httpx

from bastion.identity.passwords.errors import BreachCheckUnavailable
from bastion.identity.passwords.normalization import password_bytes
from bastion.identity.passwords.settings import PasswordSettings

__all__ = [
    "HIBP_PREFIX_CHARS",
    "HibpBreachChecker",
    "InMemoryBreachChecker",
    "sha1_hex",
]

HIBP_PREFIX_CHARS = 5
#: A padded answer is 800-1,000 lines of 35-40 bytes; refuse to buffer more than this.
MAX_RESPONSE_BYTES = 512 * 1024
USER_AGENT = "bastion-password-policy"


def sha1_hex(password: str) -> str:
    """Upper-case SHA-1 hex of the NFKC-normalised UTF-8 password (HIBP's key format)."""
    return hashlib.sha1(password_bytes(password), usedforsecurity=False).hexdigest().upper()


class HibpBreachChecker:
    """:class:`~bastion.identity.passwords.interfaces.BreachChecker` over the HIBP range API."""

    def __init__(
        self,
        *,
        base_url: str = "https://api.pwnedpasswords.com/range/",
        timeout_seconds: float = 2.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)
        self._timeout = timeout_seconds

    @classmethod
    def from_settings(
        cls, settings: PasswordSettings, client: httpx.AsyncClient | None = None
    ) -> HibpBreachChecker:
        return cls(
            base_url=settings.breach_check_url,
            timeout_seconds=settings.breach_check_timeout_seconds,
            client=client,
        )

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
            async with self._client.stream(
                "GET", self._base_url + prefix, headers=headers, timeout=self._timeout
            ) as response:
                if response.status_code != httpx.codes.OK:
                    raise BreachCheckUnavailable
                chunks = bytearray()
                async for chunk in response.aiter_bytes():
                    chunks += chunk
                    if len(chunks) > MAX_RESPONSE_BYTES:
                        raise BreachCheckUnavailable
        except httpx.HTTPError:
            raise BreachCheckUnavailable from None
        return chunks.decode("ascii", errors="replace")

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
