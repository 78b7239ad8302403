"""Breach checks. The HIBP client runs against a local fetcher that answers like the range API
(through httpx.MockTransport handlers): the real service is on the internet, which tests must not
(and here cannot) reach. The default fetcher is the SSRF-safe outbound client."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

import httpx
import pytest

from bastion.identity.passwords import (
    BreachCheckUnavailable,
    HibpBreachChecker,
    InMemoryBreachChecker,
    PasswordSettings,
)
from bastion.outbound import (
    OutboundClient,
    OutboundResponse,
    OutboundSettings,
    OutboundTimeout,
    OutboundTransportFailed,
    ResponseTooLarge,
    StubResolver,
)

PASSWORD = "P@ssw0rd-that-leaked"
SHA1 = hashlib.sha1(PASSWORD.encode()).hexdigest().upper()  # noqa: S324 - the HIBP key format
PREFIX, SUFFIX = SHA1[:5], SHA1[5:]


class _Fetcher:
    """A :class:`RangeFetcher` that hands each request to ``handler`` (no network)."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.handler = handler
        self.closed = False

    async def get(
        self, url: str, *, headers: Mapping[str, str] | None = None, follow_redirects: bool = False
    ) -> OutboundResponse:
        assert not follow_redirects
        response = self.handler(httpx.Request("GET", url, headers=dict(headers or {})))
        return OutboundResponse(
            status=response.status_code,
            headers=dict(response.headers),
            body=response.read(),
            url=url,
        )

    async def aclose(self) -> None:
        self.closed = True


def _checker(handler: Callable[[httpx.Request], httpx.Response]) -> HibpBreachChecker:
    return HibpBreachChecker(client=_Fetcher(handler))


def _range(*lines: str) -> Callable[[httpx.Request], httpx.Response]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="\r\n".join(lines))

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


async def test_k_anonymity_only_the_prefix_leaves_the_server() -> None:
    handler = _range(f"{SUFFIX}:42", "0018A45C4D1DEF81644B54AB7F969B88D65:0")
    checker = _checker(handler)
    assert await checker.is_breached(PASSWORD)
    (request,) = handler.seen  # type: ignore[attr-defined]
    assert request.method == "GET"
    assert str(request.url) == f"https://api.pwnedpasswords.com/range/{PREFIX}"
    assert request.headers["Add-Padding"] == "true"
    assert request.headers["User-Agent"]
    sent = str(request.url) + str(request.headers) + request.content.decode()
    assert SUFFIX not in sent
    assert PASSWORD not in sent
    await checker.aclose()


async def test_not_breached_and_padding_entries_are_ignored() -> None:
    other = "0018A45C4D1DEF81644B54AB7F969B88D65"
    assert not await _checker(_range(f"{other}:3")).is_breached(PASSWORD)
    # Add-Padding inserts fake suffixes with a count of 0: never a match.
    assert not await _checker(_range(f"{SUFFIX}:0", f"{other}:3")).is_breached(PASSWORD)
    assert await _checker(_range(f"{SUFFIX.lower()}:1")).is_breached(PASSWORD)


async def test_the_password_is_nfkc_normalised_first() -> None:
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in PASSWORD)
    assert full_width != PASSWORD
    assert await _checker(_range(f"{SUFFIX}:7")).is_breached(full_width)


@pytest.mark.parametrize(
    "handler",
    [
        lambda _: httpx.Response(503),
        lambda _: httpx.Response(429, headers={"Retry-After": "2"}),
        lambda _: httpx.Response(301, headers={"Location": "https://evil.example/"}),
        lambda _: httpx.Response(200, content=b"0" * (600 * 1024)),
    ],
)
async def test_bad_answers_are_unavailable_never_a_guess(
    handler: Callable[[httpx.Request], httpx.Response],
) -> None:
    with pytest.raises(BreachCheckUnavailable):
        await _checker(handler).is_breached(PASSWORD)


@pytest.mark.parametrize(
    "error",
    [
        OutboundTransportFailed("ConnectError"),
        OutboundTimeout("total"),
        ResponseTooLarge("body"),
    ],
)
async def test_network_failures_are_unavailable(error: Exception) -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(BreachCheckUnavailable) as info:
        await _checker(handler).is_breached(PASSWORD)
    assert (info.value.code, info.value.status) == ("breach_check_unavailable", 503)


async def test_from_settings_and_own_client_lifecycle() -> None:
    settings = PasswordSettings(
        breach_check=True,
        breach_check_url="https://hibp.internal/range",
        breach_check_timeout_seconds=1,
    )
    handler = _range(f"{SUFFIX}:1")
    fetcher = _Fetcher(handler)
    checker = HibpBreachChecker.from_settings(settings, client=fetcher)
    assert await checker.is_breached(PASSWORD)
    assert str(handler.seen[0].url) == f"https://hibp.internal/range/{PREFIX}"  # type: ignore[attr-defined]
    await checker.aclose()
    assert not fetcher.closed  # a client passed in belongs to the caller
    owned = HibpBreachChecker()
    # By default the request goes through the SSRF-safe client, never a plain httpx client.
    assert isinstance(owned.client, OutboundClient)
    await owned.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/range/",  # cloud metadata
        "https://127.0.0.1/range/",
        "https://hibp.internal/range/",  # resolves to a private address below
    ],
)
async def test_a_breach_url_to_an_internal_address_is_refused(url: str) -> None:
    resolver = StubResolver({"hibp.internal": ["10.0.0.5"]})
    client = OutboundClient(OutboundSettings(), resolver=resolver)
    checker = HibpBreachChecker(base_url=url, client=client)
    with pytest.raises(BreachCheckUnavailable):
        await checker.is_breached(PASSWORD)
    await client.aclose()


async def test_in_memory_checker() -> None:
    checker = InMemoryBreachChecker(["hunter2-but-longer", PASSWORD])
    assert await checker.is_breached(PASSWORD)
    assert not await checker.is_breached("something else entirely")
    by_hash = InMemoryBreachChecker.from_sha1_hashes([SHA1.lower() + "\n"])
    assert await by_hash.is_breached(PASSWORD)
