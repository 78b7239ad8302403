"""Seams of the outbound client."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bastion.outbound.addresses import IPAddress


class Resolver(Protocol):
    """Turns a host name into the addresses to connect to.

    ``resolve`` returns every address of ``host`` (an LDH name, never an IP literal), in the
    order to try them; raises :class:`~bastion.outbound.errors.ResolutionFailed` when the name
    does not resolve or the answer is empty. The caller checks every address it returns.
    """

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]: ...
