"""RejectionAuditMiddleware: one event per rejected request, and nothing secret in it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.unit.http.helpers import REQUEST_ID, client, stamped

from bastion.audit.events import AuditEvent, EventType, Outcome
from bastion.clock import FrozenClock
from bastion.http import handlers
from bastion.http.middleware.audit_rejections import (
    MAX_PATH,
    MAX_USER_AGENT,
    RejectionAuditMiddleware,
)
from bastion.http.middleware.content_type import JsonContentMiddleware

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class ListRecorder:
    """An in-memory AuditRecorder."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class Item(BaseModel):
    name: str


def build_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    handlers.include(app)

    @app.post("/items/{token}")
    async def create(token: str, item: Item) -> dict[str, str]:
        return {"name": item.name}

    @app.get("/status/{code}")
    async def status(code: int) -> PlainTextResponse:
        return PlainTextResponse("x", status_code=code)

    @app.get("/with-state")
    async def with_state(request: Request) -> PlainTextResponse:
        request.state.client_ip = "198.51.100.1"
        return PlainTextResponse("x", status_code=400)

    return app


def audited(recorder: ListRecorder, inner: ASGIApp | None = None) -> ASGIApp:
    app = inner or build_app()
    return stamped(RejectionAuditMiddleware(app, recorder=recorder, clock=FrozenClock(NOW)))


async def test_validation_failure_is_recorded_without_secrets() -> None:
    recorder = ListRecorder()
    async with client(audited(recorder)) as http:
        response = await http.post(
            "/items/reset-token-SECRET?password=hunter2",
            json={"name": 1, "password": "hunter2"},
            headers={"authorization": "Bearer SECRET", "user-agent": "probe/1.0"},
        )
    assert response.status_code == 422
    (event,) = recorder.events
    assert event == AuditEvent(
        type=EventType.HTTP_REQUEST_REJECTED,
        outcome=Outcome.FAILURE,
        time=NOW,
        client_ip="203.0.113.7",
        user_agent="probe/1.0",
        request_id=REQUEST_ID,
        reason="validation_failed",
        details={"method": "POST", "path": "/items/{token}", "status": 422},
    )
    assert "SECRET" not in repr(event)
    assert "hunter2" not in repr(event)


async def test_rejection_before_routing_uses_the_route_template() -> None:
    # The JSON middleware answers before the router runs: the template is still found, so a
    # token in the path does not reach the audit log.
    recorder = ListRecorder()
    app = build_app()
    app.add_middleware(JsonContentMiddleware, max_depth=8, max_elements=100)
    app.add_middleware(RejectionAuditMiddleware, recorder=recorder, clock=FrozenClock(NOW))
    async with client(stamped(app)) as http:
        response = await http.post(
            "/items/reset-token-SECRET", content=b"a=1", headers={"content-type": "text/plain"}
        )
    assert response.status_code == 415
    (event,) = recorder.events
    assert event.reason == "unsupported_media_type"
    assert event.details["path"] == "/items/{token}"
    assert "SECRET" not in repr(event)


@pytest.mark.parametrize("status", [400, 413, 415, 422, 431])
async def test_audited_statuses(status: int) -> None:
    recorder = ListRecorder()
    async with client(audited(recorder)) as http:
        await http.get(f"/status/{status}")
    (event,) = recorder.events
    assert event.reason == f"http_{status}"
    assert event.details == {"method": "GET", "path": "/status/{code}", "status": status}


@pytest.mark.parametrize("status", [200, 204, 401, 403, 404, 405, 429, 500])
async def test_other_statuses_are_not_recorded(status: int) -> None:
    recorder = ListRecorder()
    async with client(audited(recorder)) as http:
        await http.get(f"/status/{status}")
    assert recorder.events == []


async def test_unmatched_path_is_truncated_and_has_no_query() -> None:
    recorder = ListRecorder()

    async def reject(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    long_path = "/" + "p" * 1000
    async with client(audited(recorder, reject)) as http:
        await http.get(long_path, params={"token": "SECRET"}, headers={"user-agent": "u" * 5000})
    (event,) = recorder.events
    assert event.details["path"] == long_path[:MAX_PATH]
    assert event.user_agent == "u" * MAX_USER_AGENT
    assert "SECRET" not in repr(event)


async def test_client_ip_from_state_wins_over_peer() -> None:
    recorder = ListRecorder()
    async with client(audited(recorder)) as http:
        await http.get("/with-state")
    assert recorder.events[0].client_ip == "198.51.100.1"


async def test_default_clock_is_utc_now() -> None:
    recorder = ListRecorder()
    app = RejectionAuditMiddleware(build_app(), recorder=recorder)
    before = datetime.now(UTC)
    async with client(app) as http:
        await http.get("/status/400")
    assert before <= recorder.events[0].time <= datetime.now(UTC)
    assert recorder.events[0].request_id is None
