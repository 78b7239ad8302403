"""Header blocks: constant headers validated once, refused when they could inject or frame."""

from __future__ import annotations

import pytest

from bastion.http.header_block import HeaderBlock, InvalidHeader


def test_block_is_the_bytes_a_server_writes() -> None:
    block = HeaderBlock.of(
        [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]
    )
    assert block == b"x-content-type-options: nosniff\r\ncache-control: no-store\r\n"
    assert block.headers == (
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    )
    assert HeaderBlock.of([]) == b""


@pytest.mark.parametrize(
    "value",
    [b"no-store\r\nset-cookie: session=evil", b"a\nb", b"a\rb", b"nul\x00", b"del\x7f"],
)
def test_value_that_could_inject_a_header_is_refused(value: bytes) -> None:
    with pytest.raises(InvalidHeader, match="invalid value"):
        HeaderBlock.of([(b"cache-control", value)])


@pytest.mark.parametrize(
    "name", [b"", b"Cache-Control", b"cache control", b"x:y", b"x\r\ny", b"x(y)", b"x\ty"]
)
def test_invalid_or_uppercase_name_is_refused(name: bytes) -> None:
    with pytest.raises(InvalidHeader, match="invalid header name"):
        HeaderBlock.of([(name, b"v")])


@pytest.mark.parametrize("name", [b"content-length", b"transfer-encoding", b"connection"])
def test_framing_headers_stay_the_servers(name: bytes) -> None:
    # A block's headers are written without the server's framing bookkeeping: a Content-Length
    # there would desynchronise the response (request smuggling), so it can never be in one.
    with pytest.raises(InvalidHeader, match="frames the message"):
        HeaderBlock.of([(name, b"0")])


def test_tab_is_allowed_in_values_as_uvicorn_allows() -> None:
    assert HeaderBlock.of([(b"x-a", b"a\tb")]) == b"x-a: a\tb\r\n"
