"""``POST /v1/sessions`` (password login) is served by a plain Starlette route tried first
(``bastion.identity._direct``): its answers, and the audit events its logins record, must be
the FastAPI route's.

Each case is sent twice to the same app and database (clock frozen, so backoff waits do not
move): once as served, once with the direct routes taken out (the FastAPI route, still
registered, answers). Status, body (fresh tokens, session ids and challenges by presence only),
headers (cookie values masked, their attributes kept) and the audit events recorded are
compared.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from fastapi import FastAPI
from tests.functional.identity_helpers import (
    VARYING_HEADERS,
    WRONG_PASSWORD,
    Account,
    client_for,
    client_ip,
    create_account,
    enroll_totp,
    identity_settings,
    register,
    running_app,
    unique_email,
    wait_for_mail,
)

from bastion.audit.capture import Captured, event_of
from bastion.audit.events import AuditEvent
from bastion.clock import FrozenClock
from bastion.config import Settings
from bastion.identity._direct import DirectRoute
from bastion.identity.fields import MAX_PASSWORD_CHARS

#: Fresh on every answer: compared by presence only.
FRESH = frozenset(
    {
        "access_token",
        "refresh_token",
        "csrf_token",
        "request_id",
        "session_id",
        "challenge_token",
    }
)
_ips = itertools.count(7_000)


class Answer(NamedTuple):
    status: int
    body: Any
    headers: list[tuple[str, str]]
    #: The audit events the request recorded: (type, outcome, reason), details, actor/subject.
    audit: list[tuple[str, str, str | None]]
    details: list[dict[str, Any]]
    subjects: list[tuple[str | None, str | None]]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return identity_settings(tmp_path, database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings, clock=FrozenClock()) as app:
        yield app


@pytest.fixture
def recorded(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[AuditEvent]:
    """Every audit event recorded from now on (then written as usual)."""
    recorder = app.state.services.audit
    events: list[AuditEvent] = []
    record = recorder.record

    record_captured = recorder.record_captured

    def spy(event: AuditEvent) -> None:
        events.append(event)
        record(event)

    def spy_captured(item: Captured) -> None:
        # record_from_scope's path (h-audit10): the event the writer will build from it.
        events.append(event_of(item))
        record_captured(item)

    monkeypatch.setattr(recorder, "record", spy)
    monkeypatch.setattr(recorder, "record_captured", spy_captured)
    return events


@contextmanager
def fastapi_only(app: FastAPI) -> Any:
    """The app without its direct routes, for the duration of the block."""
    routes = app.router.routes
    taken = [(n, r) for n, r in enumerate(routes) if isinstance(r, DirectRoute)]
    assert "/v1/sessions" in {route.path for _, route in taken}
    for n, _ in reversed(taken):
        del routes[n]
    try:
        yield
    finally:
        for n, route in taken:
            routes.insert(n, route)


def _header(name: str, value: str) -> tuple[str, str]:
    if name == "set-cookie":  # the value is fresh; the name and attributes must match
        cookie, _, attributes = value.partition(";")
        return name, f"{cookie.split('=', 1)[0]}=...;{attributes}"
    return name, value


def _comparable(response: httpx.Response, events: list[AuditEvent]) -> Answer:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.content
    if isinstance(body, dict):
        body = {k: (k in FRESH) or v for k, v in body.items()}
    headers = [_header(k, v) for k, v in response.headers.multi_items() if k not in VARYING_HEADERS]
    audit = [(str(e.type), str(e.outcome), e.reason) for e in events]
    details = [{k: (k in FRESH) or v for k, v in (e.details or {}).items()} for e in events]
    subjects = [(e.actor, e.subject) for e in events]
    assert all(e.request_id == events[0].request_id for e in events)
    return Answer(response.status_code, body, headers, audit, details, subjects)


async def _same(
    app: FastAPI, recorded: list[AuditEvent], send: Callable[[], Awaitable[httpx.Response]]
) -> Answer:
    recorded.clear()
    direct = _comparable(await send(), recorded)
    recorded.clear()
    with fastapi_only(app):
        fastapi = _comparable(await send(), recorded)
    assert direct == fastapi
    return direct


def _client(app: FastAPI, *, https: bool = False) -> httpx.AsyncClient:
    """A client of its own address: per-IP limits and backoff stay out of the comparison."""
    return client_for(app, client_ip(next(_ips)), https=https)


async def _account(app: FastAPI, settings: Settings) -> Account:
    async with _client(app) as client:
        return await create_account(client, settings)


def _post(
    client: httpx.AsyncClient, body: dict[str, Any], **headers: str
) -> Callable[[], Awaitable[httpx.Response]]:
    return lambda: client.post("/v1/sessions", json=body, headers=headers)


async def test_the_login_route_is_tried_first(app: FastAPI) -> None:
    first = app.router.routes[0]
    assert isinstance(first, DirectRoute)
    assert first.path == "/v1/sessions"
    assert first.methods == {"POST"}


async def test_logins_are_the_fastapi_routes(
    app: FastAPI, settings: Settings, recorded: list[AuditEvent]
) -> None:
    account = await _account(app, settings)
    body = {"email": account.email, "password": account.password}
    async with _client(app) as client:
        answer = await _same(app, recorded, _post(client, body))
    assert answer.status == 200
    assert set(answer.body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "session_id",
    }
    assert ("identity:login:succeeded", "success", None) in answer.audit
    # The address as typed differently: normalised the same way on both routes.
    shouted = {"email": account.email.upper(), "password": account.password}
    async with _client(app) as client:
        answer = await _same(app, recorded, _post(client, shouted))
    assert answer.status == 200


async def test_cookie_logins_are_the_fastapi_routes(
    app: FastAPI, settings: Settings, recorded: list[AuditEvent]
) -> None:
    account = await _account(app, settings)
    body = {"email": account.email, "password": account.password, "transport": "cookie"}
    same_site = {"origin": "https://testserver", "sec-fetch-site": "same-origin"}
    async with _client(app, https=True) as client:
        answer = await _same(app, recorded, _post(client, body, **same_site))
        assert answer.status == 200
        assert set(answer.body) == {"token_type", "expires_in", "session_id", "csrf_token"}
        assert len([v for k, v in answer.headers if k == "set-cookie"]) == 3
        # Login CSRF: a foreign site posting the victim's browser into the attacker's account.
        foreign = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
        answer = await _same(app, recorded, _post(client, body, **foreign))
        assert answer.status == 403


async def test_refusals_are_the_fastapi_routes(
    app: FastAPI, settings: Settings, recorded: list[AuditEvent]
) -> None:
    account = await _account(app, settings)
    cases = [
        {"email": account.email, "password": WRONG_PASSWORD},
        {"email": unique_email("nobody"), "password": WRONG_PASSWORD},
        {"email": unique_email("nobody"), "password": account.password},
    ]
    for body in cases:
        async with _client(app) as client:
            answer = await _same(app, recorded, _post(client, body))
        assert answer.status == 401
        assert answer.body["code"] == "invalid_credentials"
        assert [t for t, _, _ in answer.audit] == ["identity:login:failed"]
    # An account whose address is not confirmed yet: the same refusal.
    unverified = unique_email("unverified")
    async with _client(app) as client:
        assert (await register(client, unverified)).status_code == 202
        await wait_for_mail(settings, unverified, "verify_email")  # the account exists
        body = {"email": unverified, "password": account.password}
        answer = await _same(app, recorded, _post(client, body))
    assert answer.status == 401
    assert answer.audit == [("identity:login:failed", "failure", "unverified")]


async def test_backoff_answers_are_the_fastapi_routes(
    app: FastAPI, settings: Settings, recorded: list[AuditEvent]
) -> None:
    account = await _account(app, settings)
    wrong = {"email": account.email, "password": WRONG_PASSWORD}
    for _ in range(20):
        async with _client(app) as client:
            response = await client.post("/v1/sessions", json=wrong)
        if response.status_code == 429:
            break
        assert response.status_code == 401
    else:
        pytest.fail("no backoff after 20 failures")
    # In backoff (the frozen clock keeps the wait): refused before the password is looked at,
    # the right one included, with the same Retry-After and the same throttling event.
    for password in (WRONG_PASSWORD, account.password):
        body = {"email": account.email, "password": password}
        async with _client(app) as client:
            answer = await _same(app, recorded, _post(client, body))
        assert answer.status == 429
        assert "retry-after" in dict(answer.headers)
        assert [t for t, _, _ in answer.audit] == ["identity:login:throttled"]


async def test_second_factor_answers_are_the_fastapi_routes(
    app: FastAPI, settings: Settings, recorded: list[AuditEvent]
) -> None:
    account = await _account(app, settings)
    async with _client(app) as client:
        await enroll_totp(app, client, account)
        body = {"email": account.email, "password": account.password}
        answer = await _same(app, recorded, _post(client, body))
    assert answer.status == 202
    assert answer.body == {
        "mfa_required": True,
        "challenge_token": True,
        "expires_in": answer.body["expires_in"],
        "methods": ["otp", "recovery"],
    }
    assert [t for t, _, _ in answer.audit] == ["identity:mfa:challenge_issued"]


BODIES = [
    b"",
    b"null",
    b"{}",
    b"[]",
    b'"x"',
    b'{"email": "someone@example.com"}',
    b'{"password": "x"}',
    b'{"email": "not-an-address", "password": "x"}',
    b'{"email": "someone@example.com", "password": ""}',
    b'{"email": "someone@example.com", "password": 123}',
    b'{"email": "someone@example.com", "password": "x", "transport": "carrier-pigeon"}',
    b'{"email": "someone@example.com", "password": "x", "is_admin": true}',
    b'{"email": "someone@example.com", "password": "' + b"p" * (MAX_PASSWORD_CHARS + 1) + b'"}',
    b'{"email',
    b"\xff\xfe",
]


@pytest.mark.parametrize("body", BODIES)
async def test_malformed_bodies_are_the_fastapi_routes(
    app: FastAPI, recorded: list[AuditEvent], body: bytes
) -> None:
    async with _client(app) as client:
        headers = {"content-type": "application/json"}
        answer = await _same(
            app, recorded, lambda: client.post("/v1/sessions", content=body, headers=headers)
        )
    assert answer.status in {400, 422}
    assert [t for t, _, _ in answer.audit] == ["http:request:rejected"]


CONTENT_TYPES = [
    None,
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-8",
    "application/merge-patch+json",
    "application/jsonx",
    "APPLICATION/JSON",
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
async def test_content_types_are_the_fastapi_routes(
    app: FastAPI, settings: Settings, recorded: list[AuditEvent], content_type: str | None
) -> None:
    content = b'{"email": "someone@example.com", "password": "unicorn meadow saxophone 53"}'
    async with _client(app) as client:
        headers = {} if content_type is None else {"content-type": content_type}
        request = client.build_request("POST", "/v1/sessions", content=content, headers=headers)
        assert request.headers.get("content-type") == content_type
        answer = await _same(app, recorded, lambda: client.send(request))
    assert answer.status in {401, 415, 422}


async def test_other_methods_are_the_fastapi_routes(
    app: FastAPI, recorded: list[AuditEvent]
) -> None:
    async with _client(app) as client:
        answer = await _same(app, recorded, lambda: client.put("/v1/sessions"))
        assert answer.status == 405
        assert any(k == "allow" for k, _ in answer.headers)
        answer = await _same(app, recorded, lambda: client.get("/v1/sessions"))
        assert answer.status == 401
        answer = await _same(app, recorded, lambda: client.delete("/v1/sessions"))
        assert answer.status == 401


async def test_the_login_stays_in_the_openapi_document(app: FastAPI) -> None:
    post = app.openapi()["paths"]["/v1/sessions"]["post"]
    assert "requestBody" in post
    assert {"200", "202", "401", "422", "429"} <= set(post["responses"])
