"""Recording an audit event does not delay the response (issue 7), on the real app.

The route only queues the event; the recorder's writer runs after the step that recorded it, in
which the route hands its response to the server, and it writes in slices with the event loop
running between two (``bastion.audit.recorder.WRITE_SLICE``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from tests.conftest import migrated

from bastion.app import create_app
from bastion.audit.context import event_from_scope
from bastion.audit.events import EventType, Outcome
from bastion.audit.sinks import _database

from .conftest import make_settings

CONCURRENT = 4


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/test/record",
        "raw_path": b"/test/record",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"user-agent", b"test")],
        "client": ("203.0.113.7", 50000),
        "server": ("testserver", 80),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize("batch_size", [1, 200], ids=["every-event-fills-a-batch", "group-commit"])
async def test_the_writer_runs_after_the_responses_of_the_requests_that_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int
) -> None:
    # With a batch of one, every record() wakes the writer at once (the worst case): it must
    # still start only after the responses of the step that recorded (every request of the
    # gather below runs its whole route in one step).
    order: list[str] = []
    real_link = _database._link

    def logged_link(*args: Any) -> Any:
        order.append("written")
        return real_link(*args)

    monkeypatch.setattr(_database, "_link", logged_link)
    settings = make_settings(tmp_path, audit_batch_size=batch_size)
    await migrated(settings.effective_database_url)
    app: FastAPI = create_app(settings)
    recorder = app.state.services.audit

    @app.get("/test/record")
    async def record(request: Request) -> dict[str, bool]:
        recorder.record(
            event_from_scope(
                request.scope,
                EventType.IDENTITY_PROFILE_UPDATED,
                Outcome.SUCCESS,
                actor="user:test",
                details={"fields": ["display_name"]},
            )
        )
        order.append("recorded")
        return {"ok": True}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            order.append("sent")

    async with app.router.lifespan_context(app):
        await recorder._queue.join()  # the startup's own events are written first
        order.clear()
        before = recorder.written_total
        await asyncio.gather(*(app(_scope(), _receive, send) for _ in range(CONCURRENT)))
    # The lifespan's end drained the queue: every event was written, after every response.
    assert order == ["recorded", "sent"] * CONCURRENT + ["written"] * CONCURRENT
    assert recorder.written_total == before + CONCURRENT
    assert recorder.dropped_total == 0
