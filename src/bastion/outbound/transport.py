"""The connection layer: resolve once, check every address, connect to a checked address.

:class:`VettingBackend` is an httpcore network backend. httpcore asks it for a TCP connection to
the URL's host; it resolves the name itself (once), refuses the connection unless *every*
address of the answer is allowed, and connects to the first allowed address that answers. TLS is
then started on that socket by httpcore with the original name for SNI and certificate
verification, and the ``Host`` header is the original name too. No other component resolves the
name again, so an answer that changes between a check and a connect (DNS rebinding) cannot steer
the request: there is only one answer, and it is the one that was checked.

:class:`SafeTransport` is an httpx transport over a connection pool that uses this backend, with
no proxy (a proxy would resolve the name itself, out of reach of the check).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Iterable, Sequence

import httpcore
import httpx

from bastion.outbound.addresses import IPAddress, refusal
from bastion.outbound.errors import DestinationRefused, OutboundTimeout, ResolutionFailed
from bastion.outbound.interfaces import Resolver

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


def vet(addresses: Sequence[IPAddress], *, allow_loopback: bool) -> list[IPAddress]:
    """``addresses`` if every one is allowed; raises :class:`DestinationRefused` otherwise.

    One refused address refuses the whole answer: a name that resolves to a public and a private
    address at once is either misconfigured or an attack, and trying the public one first would
    still leave the private one to the fallback.
    """
    if not addresses:
        raise ResolutionFailed("no_address", "The destination name did not resolve.")
    for address in addresses:
        reason = refusal(address, allow_loopback=allow_loopback)
        if reason is not None:
            raise DestinationRefused(reason, "The destination address is not allowed.")
    return list(addresses)


class VettingBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses that passed :func:`vet`, resolving each name exactly once."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        allow_loopback: bool = False,
        resolve_timeout: float = 5.0,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolver = resolver
        self._allow_loopback = allow_loopback
        self._resolve_timeout = resolve_timeout
        self._inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The checked addresses for ``host`` (an IP literal is checked as it is)."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            return vet([literal], allow_loopback=self._allow_loopback)
        try:
            async with asyncio.timeout(self._resolve_timeout):
                answer = await self._resolver.resolve(host, port)
        except TimeoutError:
            raise OutboundTimeout("resolve", "Resolving the destination took too long.") from None
        return vet(answer, allow_loopback=self._allow_loopback)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        *earlier, final = await self.addresses(host, port)
        for address in earlier:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue  # the next checked address of the same answer
        return await self._inner.connect_tcp(
            str(final), port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,  # noqa: ARG002
        timeout: float | None = None,  # noqa: ARG002, ASYNC109 - httpcore's signature
        socket_options: Iterable[SocketOption] | None = None,  # noqa: ARG002
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("unix_socket", "Unix sockets are not outbound destinations.")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class SafeTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection goes through a :class:`VettingBackend`."""

    def __init__(
        self,
        backend: VettingBackend,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=20, max_keepalive_connections=5)
        context = ssl_context or httpx.create_ssl_context(trust_env=False)
        if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
            # Connecting to an address instead of a name is only safe while the certificate is
            # still checked against the name.
            raise ValueError("outbound TLS must verify certificates and host names")
        super().__init__(verify=context, trust_env=False, limits=limits)
        # Replace the pool httpx built with one on the vetting backend (same options, no proxy).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )
