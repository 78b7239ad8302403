"""Bastion's uvicorn protocol writes what stock uvicorn writes, plus the header block.

The response start of ``bastion.http.protocol`` follows uvicorn's code: these tests send the
same answers through uvicorn's own cycle (the block's headers as ordinary headers, at the same
place) and through Bastion's (the block under its message key), and compare the bytes written.
An uvicorn upgrade that changes its response start makes them fail.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.flow_control import FlowControl

from bastion.http import protocol
from bastion.http.header_block import EXTENSION, MESSAGE_KEY, HeaderBlock
from bastion.http.middleware.security_headers import DEFAULT_HEADERS

BLOCK = HeaderBlock.of((n.encode(), v.encode()) for n, v in DEFAULT_HEADERS)
DATE = [(b"date", b"Sat, 28 Nov 2026 12:00:00 GMT")]


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _cycle(cls: type[Any], *, method: str = "GET", keep_alive: bool = True) -> Any:
    transport = _Transport()
    scope = {"type": "http", "method": method, "http_version": "1.1", "headers": []}
    return cls(
        scope=scope,
        transport=transport,
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=list(DATE),
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


async def _answer(cls: type[Any], messages: list[dict[str, Any]], **options: Any) -> Any:
    cycle = _cycle(cls, **options)
    for message in messages:
        await cycle.send(message)
    return cycle


def _stock(start: dict[str, Any]) -> dict[str, Any]:
    return {**start, "headers": [*start["headers"], *BLOCK.headers]}


def _ours(start: dict[str, Any]) -> dict[str, Any]:
    return {**start, MESSAGE_KEY: BLOCK}


CASES = [
    ("content-length", {"status": 200, "headers": [(b"content-length", b"2")]}, [b"{}"], {}),
    ("chunked by default", {"status": 200, "headers": []}, [b"abc"], {}),
    (
        "explicit chunked",
        {"status": 200, "headers": [(b"transfer-encoding", b"chunked")]},
        [b"x"],
        {},
    ),
    ("HEAD", {"status": 200, "headers": [(b"content-length", b"5")]}, [b""], {"method": "HEAD"}),
    ("204", {"status": 204, "headers": []}, [b""], {}),
    ("304", {"status": 304, "headers": []}, [b""], {}),
    (
        "no keep-alive",
        {"status": 200, "headers": [(b"content-length", b"0")]},
        [b""],
        {"keep_alive": False},
    ),
    (
        "connection close",
        {
            "status": 500,
            "headers": [(b"Connection", b"keep-alive, Close"), (b"content-length", b"0")],
        },
        [b""],
        {},
    ),
    (
        "mixed-case app header",
        {"status": 404, "headers": [(b"X-Request-ID", b"abc"), (b"content-length", b"0")]},
        [b""],
        {},
    ),
]


@pytest.mark.parametrize(
    ("start", "bodies", "options"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_same_bytes_and_state_as_stock_uvicorn(
    start: dict[str, Any], bodies: list[bytes], options: dict[str, Any]
) -> None:
    start = {"type": "http.response.start", **start}
    body = [{"type": "http.response.body", "body": b, "more_body": False} for b in bodies]
    stock = await _answer(httptools_impl.RequestResponseCycle, [_stock(start), *body], **options)
    ours = await _answer(protocol._Cycle, [_ours(start), *body], **options)
    assert b"".join(ours.transport.written) == b"".join(stock.transport.written)
    for attribute in (
        "keep_alive",
        "chunked_encoding",
        "expected_content_length",
        "response_complete",
    ):
        assert getattr(ours, attribute) == getattr(stock, attribute), attribute
    assert ours.transport.closed == stock.transport.closed
    assert b"content-security-policy: default-src 'none'" in b"".join(ours.transport.written)


@pytest.mark.parametrize(
    "header", [(b"x-bad", b"a\r\nset-cookie: x=1"), (b"bad name", b"v")], ids=["value", "name"]
)
async def test_app_headers_are_still_validated(header: tuple[bytes, bytes]) -> None:
    start = {"type": "http.response.start", "status": 200, "headers": [header]}
    with pytest.raises(RuntimeError, match="Invalid HTTP header"):
        await _answer(protocol._Cycle, [_ours(start)])


async def test_only_an_exact_header_block_is_written_raw() -> None:
    # Plain bytes under the key (not made by HeaderBlock.of, so never validated) are ignored:
    # the message goes to uvicorn's own send, which writes only the validated headers.
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"0")],
        MESSAGE_KEY: b"set-cookie: injected=1\r\n",
    }
    cycle = await _answer(protocol._Cycle, [start, {"type": "http.response.body", "body": b""}])
    assert b"injected" not in b"".join(cycle.transport.written)


def test_protocol_advertises_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    cycle = _cycle(httptools_impl.RequestResponseCycle)
    started: list[Any] = []
    # Only _start_asgi_task is exercised: uvicorn's own (which creates the task) is replaced.
    monkeypatch.setattr(
        httptools_impl.HttpToolsProtocol,
        "_start_asgi_task",
        lambda _self, cycle, app: started.append((cycle, app)),
    )
    probe = protocol.HttpToolsProtocol.__new__(protocol.HttpToolsProtocol)
    probe.loop = asyncio.new_event_loop()
    try:
        probe._start_asgi_task(cycle, "app")  # type: ignore[arg-type]
    finally:
        probe.loop.close()
    assert started == [(cycle, "app")]
    assert type(cycle) is protocol._Cycle
    assert cycle._loop is probe.loop  # call_soon without asyncio.get_running_loop()'s getpid
    assert EXTENSION in cycle.scope["extensions"]


def _start_with_block(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return _ours({"type": "http.response.start", "status": 200, "headers": headers})


@pytest.mark.parametrize(
    ("headers", "body", "options"),
    [
        ([(b"content-length", b"2")], b"{}", {}),
        ([], b"abc", {}),
        ([(b"content-length", b"5")], b"", {"method": "HEAD"}),
    ],
    ids=["content-length", "chunked", "HEAD"],
)
async def test_headers_and_a_small_body_go_out_in_one_write(
    headers: list[tuple[bytes, bytes]], body: bytes, options: dict[str, Any]
) -> None:
    # One system call per small answer, not one for the head and one for the body.
    cycle = await _answer(
        protocol._Cycle,
        [_start_with_block(headers), {"type": "http.response.body", "body": body}],
        **options,
    )
    assert len(cycle.transport.written) == 1
    assert cycle.transport.written[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert cycle.response_complete


async def test_headers_are_not_held_when_the_body_waits() -> None:
    # A body that does not follow in the same step (a streaming answer waiting for its first
    # piece): the headers go out on their own at the loop's next iteration.
    cycle = _cycle(protocol._Cycle)
    await cycle.send(_start_with_block([]))
    assert cycle.transport.written == []
    await asyncio.sleep(0)
    (head,) = cycle.transport.written
    assert head.endswith(b"transfer-encoding: chunked\r\n\r\n")
    await cycle.send({"type": "http.response.body", "body": b"abc", "more_body": True})
    await cycle.send({"type": "http.response.body", "body": b""})
    stock = await _answer(
        httptools_impl.RequestResponseCycle,
        [
            _stock({"type": "http.response.start", "status": 200, "headers": []}),
            {"type": "http.response.body", "body": b"abc", "more_body": True},
            {"type": "http.response.body", "body": b""},
        ],
    )
    assert b"".join(cycle.transport.written) == b"".join(stock.transport.written)
    await asyncio.sleep(0)  # the flush already ran: nothing is written twice
    assert b"".join(cycle.transport.written) == b"".join(stock.transport.written)


async def test_a_large_body_is_not_copied_to_join_the_headers() -> None:
    body = b"x" * (protocol.JOIN_LIMIT + 1)
    headers = [(b"content-length", str(len(body)).encode())]
    cycle = await _answer(
        protocol._Cycle, [_start_with_block(headers), {"type": "http.response.body", "body": body}]
    )
    assert [len(piece) for piece in cycle.transport.written][1:] == [len(body)]
    assert cycle.transport.written[1] is body


async def test_nothing_is_written_after_a_disconnect_before_the_body() -> None:
    cycle = _cycle(protocol._Cycle)
    await cycle.send(_start_with_block([(b"content-length", b"2")]))
    cycle.disconnected = True
    await cycle.send({"type": "http.response.body", "body": b"{}"})
    await asyncio.sleep(0)
    assert cycle.transport.written == []


@pytest.mark.parametrize(
    "header",
    [(b"x-bad", b"a\x00b"), (b"x-bad", b"a\x7f"), (b"a:b", b"v"), (b"", b"v"), (b"\xff", b"\x80")],
    ids=["nul", "del", "colon", "empty name", "high bytes"],
)
async def test_header_errors_are_uvicorns(header: tuple[bytes, bytes]) -> None:
    start = {"type": "http.response.start", "status": 200, "headers": [header]}
    stock_error = ours_error = None
    try:
        await _answer(httptools_impl.RequestResponseCycle, [_stock(start)])
    except RuntimeError as exc:
        stock_error = str(exc)
    try:
        await _answer(protocol._Cycle, [_ours(start)])
    except RuntimeError as exc:
        ours_error = str(exc)
    assert ours_error == stock_error


async def test_messages_without_a_block_go_to_uvicorns_send() -> None:
    cycle = _cycle(protocol._Cycle)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
    await cycle.send(start)
    await cycle.send({"type": "http.response.body", "body": b"x"})
    assert b"".join(cycle.transport.written).endswith(b"\r\n\r\nx")
    assert cycle.response_complete


async def test_remembered_header_checks_write_the_same_bytes_and_refuse_the_same_headers() -> None:
    # Response splitting: remembering the headers that passed must never let one that fails
    # through, however often it is sent and whatever passed before it.
    protocol._CHECKED.clear()
    good = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"Content-Type", b"application/json"), [b"x-list", b"v"]],
    }
    body = {"type": "http.response.body", "body": b""}
    first = await _answer(protocol._Cycle, [_ours(good), body])
    assert protocol._CHECKED[b"Content-Type", b"application/json"] == b"content-type"
    assert protocol._CHECKED[DATE[0]] == b"date"  # the server's own Date header too
    again = await _answer(protocol._Cycle, [_ours(good), body])
    assert again.transport.written == first.transport.written
    assert b"content-type: application/json\r\n" in b"".join(first.transport.written)
    bad = {"type": "http.response.start", "status": 200, "headers": [(b"x-bad", b"a\r\nb: c")]}
    for _ in range(2):
        with pytest.raises(RuntimeError, match="Invalid HTTP header value"):
            await _answer(protocol._Cycle, [_ours(bad)])
    assert (b"x-bad", b"a\r\nb: c") not in protocol._CHECKED


async def test_remembered_header_checks_stay_bounded() -> None:
    # Headers that echo a client's input (a Location, an ETag) must not grow memory for ever.
    protocol._CHECKED.clear()
    for i in range(protocol.CHECKED_SIZE + 10):
        start = {"type": "http.response.start", "status": 200, "headers": [(b"etag", b"%d" % i)]}
        await _answer(protocol._Cycle, [_ours(start), {"type": "http.response.body"}])
    long_value = b"x" * (protocol.CHECKED_MAX_VALUE + 1)
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-long", long_value)]}
    await _answer(protocol._Cycle, [_ours(start), {"type": "http.response.body"}])
    assert len(protocol._CHECKED) <= protocol.CHECKED_SIZE
    assert (b"x-long", long_value) not in protocol._CHECKED
