"""The direct routes read a request body as Starlette's ``Request.body()`` does."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import ClientDisconnect, Request

from bastion.identity._direct import _read_body

SCOPE = {"type": "http", "method": "POST", "path": "/", "headers": []}
_ENDS = {"type": "http.request", "body": b"", "more_body": False}


def _request(messages: list[dict[str, Any]]) -> Request:
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    return Request(dict(SCOPE), receive)


async def _starlette(messages: list[dict[str, Any]]) -> tuple[str, Any]:
    try:
        return "body", await _request(messages).body()
    except ClientDisconnect:
        return "disconnect", None


async def _ours(messages: list[dict[str, Any]]) -> tuple[str, Any]:
    request = _request(messages)
    try:
        body = await _read_body(request)
    except ClientDisconnect:
        return "disconnect", None
    # Kept on the request: a later body() gets it without reading again.
    assert await request.body() == body
    assert await _read_body(request) == body
    return "body", body


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.request", "body": b'{"a": 1}'}],
        [{"type": "http.request"}],
        [_ENDS],
        [{"type": "http.request", "body": b"ab", "more_body": True}, _ENDS],
        [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"bc", "more_body": False},
        ],
        [{"type": "http.other"}, {"type": "http.request", "body": b"x"}],
        [{"type": "http.request", "body": b"a", "more_body": True}],  # then a disconnect
        [{"type": "http.disconnect"}],
    ],
)
async def test_same_body_or_disconnect_as_starlette(messages: list[dict[str, Any]]) -> None:
    assert await _ours(messages) == await _starlette(messages)


async def test_a_consumed_stream_is_refused_as_starlette_refuses_it() -> None:
    request = _request([{"type": "http.request", "body": b"a"}])
    async for _ in request.stream():
        pass
    with pytest.raises(RuntimeError, match="Stream consumed"):
        await _read_body(request)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"content-type", b"application/json")],
        [(b"accept", b"*/*"), (b"content-type", b"text/plain; charset=utf-8")],
        [(b"content-type", b"application/json"), (b"content-type", b"text/plain")],
        [(b"Content-Type", b"application/json")],  # not lower-case: Starlette does not see it
        [(b"content-type", b"application/\xe9+json")],
        [(b"content-type", b"")],
    ],
)
def test_the_content_type_is_starlettes(headers: list[tuple[bytes, bytes]]) -> None:
    from bastion.identity._direct import _content_type  # noqa: PLC0415

    request = Request({**SCOPE, "headers": headers})
    assert _content_type(request) == Request({**SCOPE, "headers": headers}).headers.get(
        "content-type"
    )
