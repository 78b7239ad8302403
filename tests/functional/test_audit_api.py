"""The audit query API on the real app (SQLite and PostgreSQL): administrators search with
filters and tamper-proof cursors; users see only their own events (IDOR attempts); bad input is
a 4xx problem, never a 500; every search is itself audited; the chain stays intact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.functional.identity_helpers import (
    WRONG_PASSWORD,
    Account,
    Login,
    assert_problem,
    audit_rows,
    client_for,
    create_account,
    identity_settings,
    login,
    login_response,
    running_app,
    setup_admin,
)

from bastion.config import Settings

EVENTS = "/v1/admin/audit/events"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return identity_settings(tmp_path, database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@pytest.fixture
async def admin(app: FastAPI, client: httpx.AsyncClient) -> Login:
    return await login(client, await setup_admin(app, client))


async def user_id(client: httpx.AsyncClient, session: Login) -> str:
    return str((await client.get("/v1/account", headers=session.headers)).json()["id"])


async def flushed(app: FastAPI) -> None:
    await asyncio.wait_for(app.state.services.audit._queue.join(), timeout=10)


async def fail_logins(client: httpx.AsyncClient, account: Account, times: int) -> None:
    for _ in range(times):
        response = await login_response(client, account.email, WRONG_PASSWORD)
        assert response.status_code == 401, response.text


async def test_admin_searches_with_filters_and_cursors(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, admin: Login
) -> None:
    alice = await create_account(client, settings)
    alice_id = await user_id(client, await login(client, alice))
    await fail_logins(client, alice, 3)
    await flushed(app)
    params: dict[str, Any] = {
        "type": "identity:login:failed",
        "subject": f"user:{alice_id}",
        "limit": 2,
    }
    first = await client.get(EVENTS, params=params, headers=admin.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["events"]) == 2
    assert page["next_cursor"]
    second = await client.get(
        EVENTS, params={**params, "cursor": page["next_cursor"]}, headers=admin.headers
    )
    rest = second.json()
    events = page["events"] + rest["events"]
    assert rest["next_cursor"] is None
    assert len(events) == 3
    assert {e["type"] for e in events} == {"identity:login:failed"}
    assert {e["subject"] for e in events} == {f"user:{alice_id}"}
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    assert all(e["seq"] for e in events)
    by_ip = await client.get(
        EVENTS, params={"ip": "203.0.113.7", "outcome": "failure"}, headers=admin.headers
    )
    assert by_ip.status_code == 200
    assert all(e["ip"] == "203.0.113.7" for e in by_ip.json()["events"])
    one = events[0]
    by_request = await client.get(
        EVENTS, params={"request_id": one["request_id"]}, headers=admin.headers
    )
    assert [e["id"] for e in by_request.json()["events"]] == [one["id"]]
    window = await client.get(
        EVENTS, params={"since": one["time"], "until": one["time"]}, headers=admin.headers
    )
    assert window.json()["events"] == []  # until is exclusive


async def test_a_cursor_cannot_be_altered_or_moved_to_another_search(
    app: FastAPI, client: httpx.AsyncClient, admin: Login
) -> None:
    await fail_logins(client, Account("nobody@example.com", WRONG_PASSWORD), 3)
    await flushed(app)
    params = {"type": "identity:login:failed", "limit": 1}
    cursor = (await client.get(EVENTS, params=params, headers=admin.headers)).json()["next_cursor"]
    assert cursor
    altered = cursor[:-3] + ("AAA" if cursor[-3:] != "AAA" else "BBB")
    for bad in (altered, "MTIz", cursor + "A"):
        response = await client.get(EVENTS, params={**params, "cursor": bad}, headers=admin.headers)
        assert_problem(response, 400, "invalid_cursor")
    moved = await client.get(
        EVENTS, params={"type": "identity:login:succeeded", "cursor": cursor}, headers=admin.headers
    )
    assert_problem(moved, 400, "invalid_cursor")


async def test_non_admins_cannot_search(
    client: httpx.AsyncClient, settings: Settings, admin: Login
) -> None:
    assert_problem(await client.get(EVENTS), 401, "not_authenticated")
    mallory = await login(client, await create_account(client, settings))
    for params in ({}, {"subject": f"user:{await user_id(client, admin)}"}):
        response = await client.get(EVENTS, params=params, headers=mallory.headers)
        assert_problem(response, 403, "forbidden")


async def test_users_see_only_their_own_events(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, admin: Login
) -> None:
    alice = await create_account(client, settings)
    bob = await create_account(client, settings)
    alice_session = await login(client, alice)
    bob_session = await login(client, bob)
    bob_id = await user_id(client, bob_session)
    await fail_logins(client, bob, 2)
    await flushed(app)
    # IDOR attempts: name Bob in every way a client could; Alice still gets only her events.
    attempts: list[dict[str, str]] = [
        {},
        {"subject": f"user:{bob_id}"},
        {"user_id": bob_id},
        {"user": bob_id, "actor": f"user:{bob_id}"},
    ]
    alice_types: set[str] = set()
    for params in attempts:
        response = await client.get(
            "/v1/account/events", params=params, headers=alice_session.headers
        )
        assert response.status_code == 200, response.text
        alice_types |= {e["type"] for e in response.json()["events"]}
    assert "identity:login:failed" not in alice_types
    assert "identity:login:succeeded" in alice_types
    bob_events = (await client.get("/v1/account/events", headers=bob_session.headers)).json()[
        "events"
    ]
    bob_ids = {e["id"] for e in bob_events}
    alice_ids = {
        e["id"]
        for e in (await client.get("/v1/account/events", headers=alice_session.headers)).json()[
            "events"
        ]
    }
    assert bob_ids
    assert not bob_ids & alice_ids
    # The admin API names Bob's events; Alice cannot reach it.
    response = await client.get(
        EVENTS, params={"subject": f"user:{bob_id}"}, headers=alice_session.headers
    )
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize(
    "params",
    [
        {"type": "nope:nope:nope"},
        {"since": "yesterday"},
        {"until": "2026-13-45"},
        {"outcome": "maybe"},
        {"actor": "user:\x00"},
        {"subject": "a" * 300},
        {"request_id": "has space"},
        {"ip": "999.1.1.1"},
        {"ip": "127.1"},
        {"limit": "0"},
        {"limit": "100000"},
        {"cursor": "not/base64!"},
        {"cursor": "A" * 500},
    ],
    ids=lambda p: next(iter(p)),
)
async def test_bad_filters_are_a_problem_not_a_crash(
    client: httpx.AsyncClient, admin: Login, params: dict[str, str]
) -> None:
    response = await client.get(EVENTS, params=params, headers=admin.headers)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_searches_are_audited_and_the_chain_stays_intact(
    app: FastAPI, client: httpx.AsyncClient, admin: Login
) -> None:
    admin_id = await user_id(client, admin)
    response = await client.get(EVENTS, params={"outcome": "failure"}, headers=admin.headers)
    assert response.status_code == 200
    rows = await audit_rows(app, "audit:events:searched")
    assert rows
    assert rows[-1]["actor"] == f"user:{admin_id}"
    assert rows[-1]["details"]["filter"] == {"outcome": "failure"}
    report = await app.state.services.audit_log.verify()
    assert report.intact, report.problem
    assert report.checked >= len(rows)
