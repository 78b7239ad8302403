"""The hot-path caches of the HTTP core never change an answer, and stay bounded."""

from __future__ import annotations

import os
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tests.unit.http.helpers import call

from bastion.http.middleware import request_id, security_headers, trusted_host
from bastion.http.middleware.request_id import HEADER, RequestIdMiddleware, new_request_id
from bastion.http.middleware.security_headers import SecurityHeadersMiddleware
from bastion.http.middleware.trusted_host import TrustedHostMiddleware


async def ok(_: Scope, __: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def answering(headers: list[tuple[bytes, bytes]]) -> ASGIApp:
    async def app(_: Scope, __: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def test_host_decisions_are_remembered_not_changed() -> None:
    guard = TrustedHostMiddleware(ok, allowed_hosts=["api.example.com"])
    for _ in range(3):  # decided once, then answered from the cache: the same answers
        assert (await call(guard, method="GET", host=b"api.example.com:443")).status == 200
        assert (await call(guard, method="GET", host=b"evil.example")).status == 400
        assert (await call(guard, method="GET", host=b"API.EXAMPLE.COM")).status == 200
    # A cached allowed value does not make a repeated Host header acceptable.
    repeated = [(b"host", b"api.example.com")]
    assert (await call(guard, method="GET", host=b"api.example.com", headers=repeated)).status == (
        400
    )


async def test_host_cache_is_bounded() -> None:
    guard = TrustedHostMiddleware(ok, allowed_hosts=["*"])
    for i in range(trusted_host.DECISION_CACHE_SIZE + 10):
        assert guard.is_allowed_value(b"h%d.example" % i)
    assert guard.is_allowed_value(b"a" * 1000)  # long values are decided, never remembered
    assert len(guard.allowlist.decisions) <= trusted_host.DECISION_CACHE_SIZE
    assert b"a" * 1000 not in guard.allowlist.decisions


def test_request_ids_are_unique_across_draws() -> None:
    ids = [new_request_id() for _ in range(3 * request_id._IDS_PER_DRAW + 1)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_worker_does_not_reuse_its_parents_ids() -> None:
    new_request_id()  # the parent holds a partly used draw
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert child != new_request_id()  # without the fork hook, both would take the same id


async def test_app_set_request_id_is_replaced_in_any_case() -> None:
    app = RequestIdMiddleware(answering([(b"X-Request-Id", b"forged"), (b"a", b"b")]))
    exchange = await call(app, method="GET")
    (value,) = exchange.header(HEADER)
    assert value != b"forged"
    assert (b"a", b"b") in exchange.headers


async def test_header_plans_depend_on_personal_and_scheme() -> None:
    """One list of header names, planned per (authenticated, https): never mixed up."""
    app = SecurityHeadersMiddleware(
        answering([(b"cache-control", b"public"), (b"server", b"x")]), hsts_max_age=60
    )
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    for https in (False, True, False, True):
        for personal in (False, True, False):
            sent.clear()
            scope: dict[str, Any] = {"type": "http", "scheme": "https" if https else "http"}
            scope["state"] = {"authenticated": personal}
            await app(scope, receive, send)
            headers = dict(sent[0]["headers"])
            assert headers[b"cache-control"] == (b"no-store" if personal else b"public")
            assert (b"strict-transport-security" in headers) is https
            assert b"server" not in headers
    assert sum(map(len, app.policy._plans.values())) == 4
    assert security_headers.PLAN_CACHE_SIZE >= 4
