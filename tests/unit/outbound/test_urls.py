"""Well-formed URLs pass the strict parser unchanged (the check must not refuse real hooks)."""

from __future__ import annotations

import ipaddress

import pytest

from bastion.outbound.urls import parse_target

HTTPS = frozenset({"https"})


@pytest.mark.parametrize(
    ("url", "host", "port"),
    [
        ("https://hooks.example.com/x?y=1#z", "hooks.example.com", 443),
        ("HTTPS://Hooks.Example.COM/", "hooks.example.com", 443),
        ("https://xn--bcher-kva.example/", "xn--bcher-kva.example", 443),
        ("https://a-b.c-d.example:8443/p", "a-b.c-d.example", 8443),
        ("https://93.184.216.34/", "93.184.216.34", 443),
        ("https://[2606:4700::1111]:8443/", "2606:4700::1111", 8443),
        ("https://123.example.com/", "123.example.com", 443),
        ("https://hooks.example.com?@127.0.0.1", "hooks.example.com", 443),
    ],
)
def test_well_formed_urls_pass(url: str, host: str, port: int) -> None:
    target = parse_target(url, schemes=HTTPS, ports=frozenset({443, 8443}))
    assert (target.host, target.port) == (host, port)
    if target.ip is not None:
        assert target.ip == ipaddress.ip_address(host)
