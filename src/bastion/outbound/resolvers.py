"""Resolvers: the system's (``getaddrinfo`` in a worker thread) and a stub for tests."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence

from bastion.outbound.addresses import IPAddress
from bastion.outbound.errors import ResolutionFailed

__all__ = ["StubResolver", "SystemResolver"]


def _address(text: str) -> IPAddress:
    # getaddrinfo spells a scoped IPv6 address "fe80::1%eth0"; ipaddress keeps the zone, and
    # the deny check refuses any address with one.
    return ipaddress.ip_address(text)


class SystemResolver:
    """``getaddrinfo`` (the resolver every other program on the host uses), off the event loop."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        try:
            infos = await asyncio.to_thread(
                socket.getaddrinfo, host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError):
            raise ResolutionFailed("no_address", "The destination name did not resolve.") from None
        addresses: list[IPAddress] = []
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                address = _address(str(sockaddr[0]))
                if address not in addresses:
                    addresses.append(address)
        if not addresses:
            raise ResolutionFailed("no_address", "The destination name did not resolve.")
        return addresses


class StubResolver:
    """Answers from a table, for tests. Each name maps to one answer, or to a sequence of answers
    given in turn (the last one repeats): a DNS rebinding attack in a test is
    ``{"evil.test": [["93.184.216.34"], ["127.0.0.1"]]}``. ``calls`` counts lookups per name.
    """

    def __init__(self, table: Mapping[str, Sequence[str] | Sequence[Sequence[str]]]) -> None:
        self._answers: dict[str, list[list[IPAddress]]] = {}
        for name, answer in table.items():
            turns = [answer] if not answer or isinstance(answer[0], str) else answer
            self._answers[name] = [[_address(a) for a in _strings(turn)] for turn in turns]
        self.calls: dict[str, int] = {}

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:  # noqa: ARG002
        turns = self._answers.get(host)
        count = self.calls.get(host, 0)
        self.calls[host] = count + 1
        if not turns or not turns[min(count, len(turns) - 1)]:
            raise ResolutionFailed("no_address", "The destination name did not resolve.")
        return list(turns[min(count, len(turns) - 1)])


def _strings(turn: Iterable[object]) -> list[str]:
    return [str(item) for item in turn]
