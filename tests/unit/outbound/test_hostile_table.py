"""Attack table: hostile URLs and hostile resolver answers, every one refused before any
connection is made (the recording backend proves no socket was opened)."""

from __future__ import annotations

import pytest
from tests.unit.outbound.helpers import RecordingBackend

from bastion.outbound import DestinationRefused, OutboundClient, OutboundSettings, StubResolver

PUBLIC = "93.184.216.34"

#: (url, reason): refused by the URL check itself, whatever the resolver would say.
HOSTILE_URLS: list[tuple[str, str]] = [
    # schemes
    ("http://example.com/", "scheme"),
    ("ftp://example.com/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://example.com:70/_x", "scheme"),
    ("dict://example.com:11211/stat", "scheme"),
    ("javascript:alert(1)", "no_scheme"),
    ("//example.com/", "no_scheme"),
    # ports
    ("https://example.com:22/", "port"),
    ("https://example.com:6379/", "port"),
    ("https://example.com:0/", "bad_port"),
    ("https://example.com:0443/", "bad_port"),
    ("https://example.com:65536/", "bad_port"),
    ("https://example.com:443:80/", "port"),
    ("https://example.com:/", "bad_port"),
    # numeric IPv4 forms
    ("https://2130706433/", "ambiguous_ipv4"),
    ("https://0x7f000001/", "ambiguous_ipv4"),
    ("https://0x7f.0.0.1/", "ambiguous_ipv4"),
    ("https://0177.0.0.1/", "ambiguous_ipv4"),
    ("https://127.1/", "ambiguous_ipv4"),
    ("https://127.0.1/", "ambiguous_ipv4"),
    ("https://0/", "ambiguous_ipv4"),
    ("https://017700000001/", "ambiguous_ipv4"),
    ("https://1.2.3.4.5/", "ambiguous_ipv4"),
    ("https://256.0.0.1/", "ambiguous_ipv4"),
    ("https://example.0x10/", "ambiguous_ipv4"),
    ("https://127.000.000.001/", "ambiguous_ipv4"),
    # literal addresses in deny ranges
    ("https://127.0.0.1/", "loopback"),
    ("https://10.0.0.1/", "private"),
    ("https://172.16.5.4/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link_local"),
    ("https://100.64.0.1/", "cgnat"),
    ("https://0.0.0.0/", "this_network"),
    ("https://224.0.0.1/", "multicast"),
    ("https://255.255.255.255/", "broadcast"),
    ("https://240.0.0.1/", "reserved"),
    ("https://[::1]/", "loopback"),
    ("https://[::]/", "unspecified"),
    ("https://[::ffff:127.0.0.1]/", "ipv4_mapped"),
    ("https://[::ffff:7f00:1]/", "ipv4_mapped"),
    ("https://[::ffff:8.8.8.8]/", "ipv4_mapped"),
    ("https://[::127.0.0.1]/", "ipv4_compatible"),
    ("https://[fd00::1]/", "unique_local"),
    ("https://[fe80::1]/", "link_local"),
    ("https://[ff02::1]/", "multicast"),
    ("https://[64:ff9b::a9fe:a9fe]/", "embedded_link_local"),
    ("https://[64:ff9b::127.0.0.1]/", "embedded_loopback"),
    ("https://[2002:7f00:1::]/", "embedded_loopback"),
    ("https://[2002:c0a8:101::1]/", "embedded_private"),
    ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "teredo"),
    # zone ids, percent-encoding, userinfo confusion, backslashes
    ("https://[fe80::1%25eth0]/", "percent_in_host"),
    ("https://%31%32%37.0.0.1/", "percent_in_host"),
    ("https://example.com%2f@127.0.0.1/", "userinfo"),
    ("https://example.com@127.0.0.1/", "userinfo"),
    ("https://user:pass@example.com/", "userinfo"),
    ("https://127.0.0.1#@example.com/", "loopback"),
    ("https://example.com\\@127.0.0.1/", "backslash"),
    ("https:\\\\127.0.0.1/", "backslash"),
    # trailing dots, Unicode, controls, malformed names
    ("https://example.com./", "trailing_dot"),
    ("https://localhost./", "trailing_dot"),
    ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "non_ascii_or_control"),
    ("https://exa\u0301mple.com/", "non_ascii_or_control"),
    ("https://ex\u200bample.com/", "non_ascii_or_control"),
    ("https://example.com\t/", "non_ascii_or_control"),
    ("https://exam ple.com/", "non_ascii_or_control"),
    ("https://example.com\r\nHost: evil/", "non_ascii_or_control"),
    ("https://under_score.example/", "bad_hostname"),
    ("https://-lead.example/", "bad_hostname"),
    ("https://a..b.example/", "bad_hostname"),
    ("https://[::1/", "bad_ipv6_literal"),
    ("https://[::1]x/", "bad_authority"),
    ("https:///path", "empty_host"),
    ("https://" + "a" * 64 + ".example/", "bad_hostname"),
    ("https://example.com/" + "a" * 3000, "too_long"),
]

#: (host, resolver answer, reason): a well-formed name whose answer is refused.
HOSTILE_ANSWERS: list[tuple[str, list[str], str]] = [
    ("localhost", ["127.0.0.1"], "loopback"),
    ("loop6.test", ["::1"], "loopback"),
    ("metadata.test", ["169.254.169.254"], "link_local"),
    ("private10.test", ["10.1.2.3"], "private"),
    ("private172.test", ["172.31.255.255"], "private"),
    ("private192.test", ["192.168.0.10"], "private"),
    ("cgnat.test", ["100.127.255.254"], "cgnat"),
    ("zero.test", ["0.0.0.0"], "this_network"),  # noqa: S104
    ("multicast.test", ["239.255.255.250"], "multicast"),
    ("broadcast.test", ["255.255.255.255"], "broadcast"),
    ("reserved.test", ["250.1.1.1"], "reserved"),
    ("benchmark.test", ["198.18.0.1"], "benchmarking"),
    ("unspecified6.test", ["::"], "unspecified"),
    ("ula.test", ["fc00::5"], "unique_local"),
    ("linklocal6.test", ["fe80::1:2"], "link_local"),
    ("zoned.test", ["fe80::1%1"], "zone_id"),
    ("mapped.test", ["::ffff:169.254.169.254"], "ipv4_mapped"),
    ("compat.test", ["::a00:1"], "ipv4_compatible"),
    ("nat64.test", ["64:ff9b::c0a8:0101"], "embedded_private"),
    ("nat64local.test", ["64:ff9b:1::1"], "nat64_local"),
    ("sixtofour.test", ["2002:a9fe:a9fe::1"], "embedded_link_local"),
    ("teredo.test", ["2001:0:4136:e378:8000:63bf:3fff:fdd2"], "teredo"),
    ("doc6.test", ["2001:db8::1"], "documentation"),
    ("mixed.test", [PUBLIC, "127.0.0.1"], "loopback"),
    ("mixed6.test", ["2606:4700::1111", "fd12::1"], "unique_local"),
    ("mixed-order.test", ["10.0.0.1", PUBLIC], "private"),
]


def _client(backend: RecordingBackend, resolver: StubResolver | None = None) -> OutboundClient:
    return OutboundClient(
        OutboundSettings(),
        resolver=resolver or StubResolver({}),
        network_backend=backend,
    )


def test_the_table_is_large_enough() -> None:
    assert len(HOSTILE_URLS) + len(HOSTILE_ANSWERS) >= 60


@pytest.mark.parametrize(("url", "reason"), HOSTILE_URLS)
async def test_hostile_url_is_refused_without_connecting(url: str, reason: str) -> None:
    backend = RecordingBackend()
    # Every name resolves to a public address: only the URL check can refuse.
    resolver = StubResolver({"example.com": [PUBLIC], "localhost": [PUBLIC]})
    client = _client(backend, resolver)
    with pytest.raises(DestinationRefused) as caught:
        await client.get(url)
    await client.aclose()
    assert caught.value.reason == reason
    assert backend.connected == []


@pytest.mark.parametrize(("host", "answer", "reason"), HOSTILE_ANSWERS)
async def test_hostile_resolver_answer_is_refused_without_connecting(
    host: str, answer: list[str], reason: str
) -> None:
    backend = RecordingBackend()
    client = _client(backend, StubResolver({host: answer}))
    with pytest.raises(DestinationRefused) as caught:
        await client.get(f"https://{host}/hook")
    await client.aclose()
    assert caught.value.reason == reason
    assert backend.connected == []


@pytest.mark.parametrize(
    "answer", [[PUBLIC], ["2606:4700::1111"], ["64:ff9b::5db8:d822"], ["2002:5db8:d822::1"]]
)
async def test_public_answers_connect_to_the_checked_address(answer: list[str]) -> None:
    backend = RecordingBackend()
    client = _client(backend, StubResolver({"hooks.example.com": answer}))
    response = await client.get("https://hooks.example.com/x")
    await client.aclose()
    assert response.status == 200
    assert response.body == b"ok"
    assert backend.connected == [(answer[0], 443)]
    # TLS and Host still name the original host, not the address.
    assert backend.sni == ["hooks.example.com"]
    assert b"Host: hooks.example.com\r\n" in backend.sent[0]
