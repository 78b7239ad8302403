"""The SSRF-safe outbound HTTP client: every request Bastion makes to an address that
configuration or a user supplied (webhooks; OIDC discovery and JWKS fetches later).

The checks, in order, for the first request and for every redirect hop:

1. :func:`~bastion.outbound.urls.parse_target` refuses address tricks, disallowed schemes and
   ports;
2. the :class:`~bastion.outbound.transport.VettingBackend` resolves the name once, refuses the
   request unless every address is allowed, and connects to a checked address (DNS rebinding);
3. redirects are not followed unless the settings allow some *and* the caller asks;
4. the response body is read up to ``max_response_bytes``; the whole exchange, redirects
   included, is bounded by ``total_timeout_seconds``.

Proxy environment variables (``HTTPS_PROXY``...) are ignored: ``trust_env=False``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bastion.outbound.errors import (
    OutboundError,
    OutboundTimeout,
    OutboundTransportFailed,
    ResponseTooLarge,
    TooManyRedirects,
)
from bastion.outbound.interfaces import Resolver
from bastion.outbound.resolvers import SystemResolver
from bastion.outbound.settings import OutboundSettings
from bastion.outbound.urls import Target, parse_target

if TYPE_CHECKING:  # imported when the first request is sent (see OutboundClient._client)
    import httpcore
    import httpx

#: No version number: the receivers of webhooks need not learn which release to attack.
USER_AGENT = "Bastion"


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    """A complete, size-bounded answer. ``url`` is the last hop's URL."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class OutboundClient:
    """Sends requests to vetted destinations only. Raises :class:`OutboundError` subclasses."""

    def __init__(
        self,
        settings: OutboundSettings | None = None,
        *,
        resolver: Resolver | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context``: to trust a private CA (certificates are always verified, against
        the URL's host name); default: the system's trust store via httpx."""
        self.settings = settings or OutboundSettings()
        self._resolver = resolver or SystemResolver()
        self._network_backend = network_backend
        self._ssl_context = ssl_context
        self._http: httpx.AsyncClient | None = None
        if ssl_context is not None:
            self._build()  # a context that does not verify is refused here, not at first use

    @property
    def _client(self) -> httpx.AsyncClient:
        # Built on first use: httpx and its TLS context (the system's CAs) weigh ~7 MiB in
        # every worker, and most workers never send a webhook or query the breach corpus.
        return self._http or self._build()

    def _build(self) -> httpx.AsyncClient:
        import httpx  # noqa: PLC0415 - see _client

        from bastion.outbound.transport import SafeTransport, VettingBackend  # noqa: PLC0415

        s = self.settings
        backend = VettingBackend(
            self._resolver,
            allow_loopback=s.allow_loopback_for_tests,
            resolve_timeout=s.resolve_timeout_seconds,
            inner=self._network_backend,
        )
        self._http = httpx.AsyncClient(
            transport=SafeTransport(backend, ssl_context=self._ssl_context),
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(
                connect=s.connect_timeout_seconds,
                read=s.read_timeout_seconds,
                write=s.read_timeout_seconds,
                pool=s.connect_timeout_seconds,
            ),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )
        return self._http

    def check_url(self, url: str) -> Target:
        """The parsed ``url`` if its form is allowed (addresses are checked when connecting).

        Raises :class:`~bastion.outbound.errors.DestinationRefused`.
        """
        return parse_target(url, schemes=self.settings.schemes, ports=self.settings.ports)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
    ) -> OutboundResponse:
        """Send one request and read the whole (bounded) answer.

        A 3xx answer is returned as it is, unless ``follow_redirects``: then each hop is checked
        like the first request, and one hop more than ``max_redirects`` (any hop, when it is 0)
        raises :class:`TooManyRedirects`. Raises :class:`OutboundError` subclasses.
        """
        import httpx  # noqa: PLC0415 - loaded with the client (see _client)

        target = self.check_url(url)
        try:
            async with asyncio.timeout(self.settings.total_timeout_seconds):
                request = self._client.build_request(
                    method, target.url, headers=dict(headers or {}), content=content
                )
                return await self._exchange(request, follow_redirects=follow_redirects)
        except TimeoutError:
            raise OutboundTimeout("total", "The outbound request took too long.") from None
        except httpx.TimeoutException as exc:
            raise OutboundTimeout(type(exc).__name__) from None
        except httpx.HTTPError as exc:
            raise OutboundTransportFailed(type(exc).__name__) from None

    async def post(
        self, url: str, *, content: bytes, headers: Mapping[str, str] | None = None
    ) -> OutboundResponse:
        return await self.request("POST", url, content=content, headers=headers)

    async def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, follow_redirects: bool = False
    ) -> OutboundResponse:
        return await self.request("GET", url, headers=headers, follow_redirects=follow_redirects)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def _exchange(
        self, request: httpx.Request, *, follow_redirects: bool
    ) -> OutboundResponse:
        hops = 0
        while True:
            response = await self._client.send(request, stream=True)
            try:
                next_request = response.next_request if response.is_redirect else None
                if next_request is not None and follow_redirects:
                    if hops >= self.settings.max_redirects:
                        raise TooManyRedirects(
                            "redirects_off" if self.settings.max_redirects == 0 else "too_many"
                        )
                    # Each hop is a new destination: the same checks as the first request.
                    self.check_url(str(next_request.url))
                    request, hops = next_request, hops + 1
                    continue
                body = await self._read(response)
                return OutboundResponse(
                    status=response.status_code,
                    headers=dict(response.headers),
                    body=body,
                    url=str(response.url),
                )
            finally:
                await response.aclose()

    async def _read(self, response: httpx.Response) -> bytes:
        limit = self.settings.max_response_bytes
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            # We asked for identity: a compressed body could expand past any limit in memory
            # before it is counted (decompression bomb).
            raise OutboundTransportFailed("content_encoding")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge("content_length")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge("body")
            chunks.append(chunk)
        return b"".join(chunks)


__all__ = ["OutboundClient", "OutboundError", "OutboundResponse"]
