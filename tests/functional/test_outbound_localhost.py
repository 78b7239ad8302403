"""The real name ``localhost`` through the system resolver and real sockets: the address check
runs after resolution (the URL holds a name, not an address), refuses by default, and lets the
request through only with the test-only setting."""

from __future__ import annotations

import pytest
from tests.common.http_receiver import http_receiver

from bastion.outbound import DestinationRefused, OutboundClient, OutboundSettings


def _settings(port: int, *, loopback: bool) -> OutboundSettings:
    return OutboundSettings(
        allow_http=True, allowed_ports=[port], allow_loopback_for_tests=loopback
    )


async def test_localhost_is_refused_after_resolution_by_default() -> None:
    async with http_receiver() as receiver:
        client = OutboundClient(_settings(receiver.port, loopback=False))
        with pytest.raises(DestinationRefused) as caught:
            await client.post(receiver.url(), content=b"{}")
        await client.aclose()
    assert caught.value.reason == "loopback"
    assert receiver.requests == []


async def test_localhost_is_reached_with_the_test_only_setting() -> None:
    async with http_receiver() as receiver:
        client = OutboundClient(_settings(receiver.port, loopback=True))
        response = await client.post(receiver.url(), content=b'{"a": 1}')
        await client.aclose()
    assert response.status == 200
    assert [r.body for r in receiver.requests] == [b'{"a": 1}']
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"
