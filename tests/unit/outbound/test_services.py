"""The outbound client: DNS rebinding, redirects hop by hop, size and time limits, proxies."""

from __future__ import annotations

import asyncio
from typing import Any

import httpcore
import pytest
from tests.unit.outbound.helpers import RecordingBackend, ok, redirect

from bastion.outbound import (
    DestinationRefused,
    OutboundClient,
    OutboundSettings,
    OutboundTimeout,
    OutboundTransportFailed,
    ResolutionFailed,
    ResponseTooLarge,
    StubResolver,
    TooManyRedirects,
)

PUBLIC = "93.184.216.34"
OTHER_PUBLIC = "151.101.1.69"


def _client(
    backend: httpcore.AsyncNetworkBackend, table: dict[str, Any], **settings: Any
) -> tuple[OutboundClient, StubResolver]:
    resolver = StubResolver(table)
    return OutboundClient(
        OutboundSettings(**settings), resolver=resolver, network_backend=backend
    ), resolver


async def test_dns_rebinding_connects_only_to_the_first_vetted_address() -> None:
    # The attacker's name answers a public address to the check, then loopback: the connection
    # must go to the address that was checked, and the name is resolved exactly once.
    backend = RecordingBackend()
    client, resolver = _client(backend, {"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    response = await client.post("https://rebind.test/hook", content=b"{}")
    await client.aclose()
    assert response.status == 200
    assert backend.connected == [(PUBLIC, 443)]
    assert resolver.calls == {"rebind.test": 1}
    assert backend.sni == ["rebind.test"]
    assert b"Host: rebind.test\r\n" in backend.sent[0]


async def test_a_rebound_name_on_a_new_connection_is_checked_again_and_refused() -> None:
    backend = RecordingBackend(ok(headers="Connection: close\r\n"))
    client, resolver = _client(backend, {"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    await client.get("https://rebind.test/a")
    with pytest.raises(DestinationRefused) as caught:
        await client.get("https://rebind.test/b")
    await client.aclose()
    assert caught.value.reason == "loopback"
    assert backend.connected == [(PUBLIC, 443)]
    assert resolver.calls == {"rebind.test": 2}


async def test_unresolvable_name_fails_without_connecting() -> None:
    backend = RecordingBackend()
    client, _ = _client(backend, {})
    with pytest.raises(ResolutionFailed):
        await client.get("https://nowhere.test/")
    await client.aclose()
    assert backend.connected == []


async def test_redirects_are_not_followed_by_default() -> None:
    backend = RecordingBackend(redirect("https://127.0.0.1/"))
    client, _ = _client(backend, {"hooks.example.com": [PUBLIC]})
    response = await client.get("https://hooks.example.com/")
    assert response.status == 302  # returned as is, never followed
    await client.aclose()
    assert backend.connected == [(PUBLIC, 443)]


async def test_asking_to_follow_when_redirects_are_off_is_refused() -> None:
    backend = RecordingBackend(redirect("https://other.example.com/"))
    client, _ = _client(backend, {"hooks.example.com": [PUBLIC]})
    with pytest.raises(TooManyRedirects) as caught:
        await client.request("GET", "https://hooks.example.com/", follow_redirects=True)
    await client.aclose()
    assert caught.value.reason == "redirects_off"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("https://127.0.0.1/", "loopback"),
        ("https://169.254.169.254/latest/", "link_local"),
        ("http://hooks.example.com/", "scheme"),
        ("https://internal.example.com/", "private"),
        ("https://hooks.example.com:8080/", "port"),
        ("https://2130706433/", "ambiguous_ipv4"),
        ("https://user@hooks.example.com/", "userinfo"),
    ],
)
async def test_each_redirect_hop_is_checked(location: str, reason: str) -> None:
    backend = RecordingBackend(redirect(location))
    client, _ = _client(
        backend,
        {"hooks.example.com": [PUBLIC], "internal.example.com": ["10.0.0.7"]},
        max_redirects=3,
    )
    with pytest.raises(DestinationRefused) as caught:
        await client.get("https://hooks.example.com/", follow_redirects=True)
    await client.aclose()
    assert caught.value.reason == reason
    assert backend.connected == [(PUBLIC, 443)]


async def test_allowed_redirects_are_followed_up_to_the_limit() -> None:
    backend = RecordingBackend(redirect("https://b.example.com/"), ok(b"done"))
    client, _ = _client(
        backend, {"a.example.com": [PUBLIC], "b.example.com": [OTHER_PUBLIC]}, max_redirects=1
    )
    response = await client.get("https://a.example.com/", follow_redirects=True)
    assert response.body == b"done"
    assert response.url == "https://b.example.com/"
    assert backend.connected == [(PUBLIC, 443), (OTHER_PUBLIC, 443)]

    looping = RecordingBackend(redirect("https://b.example.com/"))
    client2, _ = _client(
        looping, {"a.example.com": [PUBLIC], "b.example.com": [OTHER_PUBLIC]}, max_redirects=1
    )
    with pytest.raises(TooManyRedirects) as caught:
        await client2.get("https://a.example.com/", follow_redirects=True)
    await client.aclose()
    await client2.aclose()
    assert caught.value.reason == "too_many"


async def test_response_larger_than_the_limit_is_refused() -> None:
    big = b"x" * 4096
    backend = RecordingBackend(ok(big))
    client, _ = _client(backend, {"h.example.com": [PUBLIC]}, max_response_bytes=1024)
    with pytest.raises(ResponseTooLarge) as caught:
        await client.get("https://h.example.com/")
    assert caught.value.reason == "content_length"
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"400\r\n" + b"y" * 1024 + b"\r\n" for _ in range(3))
        + b"0\r\n\r\n"
    )
    backend2 = RecordingBackend(chunked)
    client2, _ = _client(backend2, {"h.example.com": [PUBLIC]}, max_response_bytes=1024)
    with pytest.raises(ResponseTooLarge) as caught2:
        await client2.get("https://h.example.com/")
    await client.aclose()
    await client2.aclose()
    assert caught2.value.reason == "body"


async def test_compressed_response_is_refused_decompression_bomb() -> None:
    backend = RecordingBackend(ok(b"\x1f\x8b", headers="Content-Encoding: gzip\r\n"))
    client, _ = _client(backend, {"h.example.com": [PUBLIC]})
    with pytest.raises(OutboundTransportFailed) as caught:
        await client.get("https://h.example.com/")
    await client.aclose()
    assert caught.value.reason == "content_encoding"
    assert b"Accept-Encoding: identity\r\n" in backend.sent[0]


class _SilentStream(httpcore.AsyncMockStream):
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ARG002, ASYNC109
        await asyncio.Event().wait()  # a server that never answers (slowloris)
        return b""


class _SilentBackend(RecordingBackend):
    async def connect_tcp(self, host: str, port: int, *_: Any, **__: Any) -> Any:
        self.connected.append((host, port))
        return _SilentStream([])


async def test_a_server_that_never_answers_hits_the_total_time_limit() -> None:
    client, _ = _client(
        _SilentBackend(),
        {"h.example.com": [PUBLIC]},
        total_timeout_seconds=0.05,
        read_timeout_seconds=60,
    )
    with pytest.raises(OutboundTimeout) as caught:
        await client.get("https://h.example.com/")
    await client.aclose()
    assert caught.value.reason == "total"


async def test_proxy_environment_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://10.9.9.9:3128")
    backend = RecordingBackend()
    client, _ = _client(backend, {"h.example.com": [PUBLIC]})
    await client.get("https://h.example.com/")
    await client.aclose()
    assert backend.connected == [(PUBLIC, 443)]


async def test_http_needs_the_explicit_opt_in() -> None:
    backend = RecordingBackend()
    client, _ = _client(backend, {"h.example.com": [PUBLIC]}, allow_http=True, allowed_ports=[80])
    response = await client.get("http://h.example.com/")
    await client.aclose()
    assert response.ok
    assert backend.connected == [(PUBLIC, 80)]
    assert backend.sni == []


async def test_loopback_setting_allows_loopback_and_nothing_else() -> None:
    backend = RecordingBackend()
    client, _ = _client(
        backend,
        {"l.test": ["127.0.0.1"], "p.test": ["10.0.0.1"], "m.test": ["::ffff:127.0.0.1"]},
        allow_loopback_for_tests=True,
    )
    await client.get("https://l.test/")
    for host in ("p.test", "m.test"):
        with pytest.raises(DestinationRefused):
            await client.get(f"https://{host}/")
    await client.aclose()
    assert backend.connected == [("127.0.0.1", 443)]
