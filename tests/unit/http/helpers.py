"""Helpers for the HTTP core's unit tests: clients, raw ASGI calls, problem+json checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.http.problems import PROBLEM_CONTENT_TYPE

#: The request id :func:`stamped` puts in every request's state.
REQUEST_ID = "test-request-id"
CLIENT = ("203.0.113.7", 50000)


def stamped(app: ASGIApp) -> ASGIApp:
    """``app`` behind a stand-in for the request id middleware (a fixed id in the state)."""

    async def stamp(scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["request_id"] = REQUEST_ID
        await app(scope, receive, send)

    return stamp


def client(
    app: ASGIApp, *, peer: tuple[str, int] = CLIENT, https: bool = False
) -> httpx.AsyncClient:
    scheme = "https" if https else "http"
    transport = httpx.ASGITransport(app=app, client=peer)
    return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver")


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Asserts ``response`` is problem+json with ``status``, ``code`` and the request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:bastion:problem:{code}"
    assert body["request_id"] == REQUEST_ID
    assert body["title"]
    assert int(response.headers["content-length"]) == len(response.content)
    return body


@dataclass
class Exchange:
    """What an ASGI app sent back for one request driven by :func:`call`."""

    scope: dict[str, Any]
    messages: list[Message] = field(default_factory=list)
    receive_calls: int = 0

    @property
    def status(self) -> int:
        status: int = self.start["status"]
        return status

    @property
    def start(self) -> Message:
        return next(m for m in self.messages if m["type"] == "http.response.start")

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self.start.get("headers", [])]

    def header(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )

    @property
    def complete(self) -> bool:
        bodies = [m for m in self.messages if m["type"] == "http.response.body"]
        return bool(bodies) and not bodies[-1].get("more_body", False)


def make_scope(
    *,
    method: str = "POST",
    path: str = "/",
    headers: Iterable[tuple[bytes, bytes]] = (),
    http_version: str = "1.1",
    scheme: str = "http",
    client_addr: tuple[str, int] | None = CLIENT,
    scope_type: str = "http",
    host: bytes | None = b"testserver",
) -> dict[str, Any]:
    host_header = [(b"host", host)] if host is not None else []
    return {
        "type": scope_type,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*host_header, *headers],
        "client": client_addr,
        "server": ("testserver", 80),
    }


async def call(
    app: ASGIApp,
    *,
    chunks: Sequence[bytes] = (),
    **scope_args: Any,
) -> Exchange:
    """Drives ``app`` with one request whose body arrives as ``chunks`` (``more_body=True``)."""
    exchange = Exchange(scope=make_scope(**scope_args))
    pending = list(chunks) or [b""]

    async def receive() -> Message:
        exchange.receive_calls += 1
        if not pending:
            return {"type": "http.disconnect"}
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: Message) -> None:
        exchange.messages.append(message)

    await app(exchange.scope, receive, send)
    return exchange
