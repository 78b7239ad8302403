"""The OpenFGA-compatible API in-process: deny by default, OpenFGA's bodies, errors and status
codes, and the decision log, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from tests.functional.identity_helpers import (
    Account,
    Login,
    audit_rows,
    client_for,
    create_account,
    identity_settings,
    login,
    running_app,
    setup_admin,
)

from bastion.authz.settings import AuthzSettings
from bastion.authz.store import is_reserved
from bastion.config import Settings
from bastion.identity.mfa.settings import MfaSettings

MODEL: dict[str, Any] = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "group",
            "relations": {"member": {"this": {}}},
            "metadata": {
                "relations": {"member": {"directly_related_user_types": [{"type": "user"}]}}
            },
        },
        {
            "type": "document",
            "relations": {
                "owner": {"this": {}},
                "viewer": {
                    "union": {"child": [{"this": {}}, {"computedUserset": {"relation": "owner"}}]}
                },
            },
            "metadata": {
                "relations": {
                    "owner": {"directly_related_user_types": [{"type": "user"}]},
                    "viewer": {
                        "directly_related_user_types": [
                            {"type": "user"},
                            {"type": "user", "wildcard": {}},
                            {"type": "group", "relation": "member"},
                        ]
                    },
                }
            },
        },
    ],
}


def authz_settings(tmp_path: Path, database_url: str | None = None, **authz: Any) -> Settings:
    # Administrators without a second factor: MFA has its own tests; these are about authz.
    return identity_settings(
        tmp_path,
        database_url=database_url,
        mfa=MfaSettings(required_for_admins=False),
        authz=AuthzSettings(**authz),
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return authz_settings(tmp_path, database_url)


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


@pytest.fixture
async def user(client: httpx.AsyncClient, settings: Settings) -> Account:
    return await create_account(client, settings)


def assert_openfga_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code, body
    return dict(body)


async def _store_with_model(client: httpx.AsyncClient, admin: Login) -> tuple[str, str]:
    created = await client.post("/stores", json={"name": "docs"}, headers=admin.headers)
    assert created.status_code == 201, created.text
    store_id = created.json()["id"]
    written = await client.post(
        f"/stores/{store_id}/authorization-models", json=MODEL, headers=admin.headers
    )
    assert written.status_code == 201, written.text
    return store_id, written.json()["authorization_model_id"]


def tuple_key(obj: str, relation: str, user: str) -> dict[str, str]:
    return {"object": obj, "relation": relation, "user": user}


async def test_every_route_refuses_requests_without_credentials(client: httpx.AsyncClient) -> None:
    store = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    calls = [
        ("GET", "/stores", None),
        ("POST", "/stores", {"name": "x"}),
        ("GET", f"/stores/{store}", None),
        ("DELETE", f"/stores/{store}", None),
        ("POST", f"/stores/{store}/authorization-models", MODEL),
        ("GET", f"/stores/{store}/authorization-models", None),
        ("POST", f"/stores/{store}/write", {}),
        ("POST", f"/stores/{store}/read", {}),
        ("GET", f"/stores/{store}/changes", None),
        (
            "POST",
            f"/stores/{store}/check",
            {"tuple_key": tuple_key("document:1", "viewer", "user:a")},
        ),
        ("POST", f"/stores/{store}/batch-check", {}),
        ("POST", f"/stores/{store}/expand", {}),
        ("POST", f"/stores/{store}/list-objects", {}),
        ("POST", f"/stores/{store}/list-users", {}),
    ]
    for method, path, body in calls:
        response = await client.request(method, path, json=body)
        assert_openfga_error(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")
    forged = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}
    assert_openfga_error(await client.get("/stores", headers=forged), 401, "unauthenticated")


async def test_an_ordinary_user_is_denied_by_default_and_it_is_audited(
    app: FastAPI, client: httpx.AsyncClient, admin: Login, user: Account
) -> None:
    store_id, _ = await _store_with_model(client, admin)
    session = await login(client, user)
    denied = [
        await client.post("/stores", json={"name": "mine"}, headers=session.headers),
        await client.get("/stores", headers=session.headers),
        await client.post(
            f"/stores/{store_id}/check",
            json={"tuple_key": tuple_key("document:1", "viewer", "user:a")},
            headers=session.headers,
        ),
        await client.post(
            f"/stores/{store_id}/write",
            json={"writes": {"tuple_keys": [tuple_key("document:1", "owner", "user:me")]}},
            headers=session.headers,
        ),
    ]
    for response in denied:
        assert_openfga_error(response, 403, "forbidden")
    rows = await audit_rows(app, "authz:api:forbidden")
    assert len(rows) == len(denied)
    assert {r["reason"] for r in rows} == {"missing_administer", "missing_query"}


async def test_query_users_may_query_but_not_administer(
    tmp_path: Path,
    database_url: str,
    app: FastAPI,
    client: httpx.AsyncClient,
    admin: Login,
    user: Account,
) -> None:
    store_id, _ = await _store_with_model(client, admin)
    session = await login(client, user)
    me = (await client.get("/v1/account", headers=session.headers)).json()["id"]
    settings = authz_settings(tmp_path / "q", database_url, query_users=(me,))
    async with running_app(settings) as other, client_for(other) as service:
        ok = await service.post(
            f"/stores/{store_id}/check",
            json={"tuple_key": tuple_key("document:1", "viewer", "user:a")},
            headers=session.headers,
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["allowed"] is False
        refused = await service.post(
            f"/stores/{store_id}/write",
            json={"writes": {"tuple_keys": [tuple_key("document:1", "owner", "user:x")]}},
            headers=session.headers,
        )
        assert_openfga_error(refused, 403, "forbidden")
        assert_openfga_error(
            await service.delete(f"/stores/{store_id}", headers=session.headers), 403, "forbidden"
        )


async def test_stores_and_models_follow_openfga(client: httpx.AsyncClient, admin: Login) -> None:
    store_id, model_id = await _store_with_model(client, admin)
    store = (await client.get(f"/stores/{store_id}", headers=admin.headers)).json()
    assert store["id"] == store_id
    assert store["name"] == "docs"
    assert store["created_at"].endswith("Z")
    listed = (await client.get("/stores", headers=admin.headers)).json()
    # Bastion's own (reserved, read-only) role store is listed too.
    assert [s["id"] for s in listed["stores"] if not is_reserved(s["id"])] == [store_id]
    assert listed["continuation_token"] == ""

    read = (
        await client.get(
            f"/stores/{store_id}/authorization-models/{model_id}", headers=admin.headers
        )
    ).json()["authorization_model"]
    assert read["id"] == model_id
    assert read["type_definitions"] == MODEL["type_definitions"]
    second = await client.post(
        f"/stores/{store_id}/authorization-models", json=MODEL, headers=admin.headers
    )
    models = (
        await client.get(f"/stores/{store_id}/authorization-models", headers=admin.headers)
    ).json()["authorization_models"]
    assert [m["id"] for m in models] == [second.json()["authorization_model_id"], model_id]

    deleted = await client.delete(f"/stores/{store_id}", headers=admin.headers)
    assert deleted.status_code == 204
    assert_openfga_error(
        await client.get(f"/stores/{store_id}", headers=admin.headers), 404, "store_id_not_found"
    )


async def test_tuples_checks_and_queries(client: httpx.AsyncClient, admin: Login) -> None:
    store_id, model_id = await _store_with_model(client, admin)
    base = f"/stores/{store_id}"
    writes = [
        tuple_key("document:1", "owner", "user:anne"),
        tuple_key("group:eng", "member", "user:bob"),
        tuple_key("document:2", "viewer", "group:eng#member"),
        tuple_key("document:3", "viewer", "user:*"),
    ]
    response = await client.post(
        f"{base}/write",
        json={"writes": {"tuple_keys": writes}, "authorization_model_id": model_id},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}

    async def check(obj: str, relation: str, user: str, **extra: Any) -> bool:
        body = {"tuple_key": tuple_key(obj, relation, user), **extra}
        answer = await client.post(f"{base}/check", json=body, headers=admin.headers)
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["allowed"])

    assert await check("document:1", "viewer", "user:anne")
    assert await check("document:2", "viewer", "user:bob")
    assert await check("document:3", "viewer", "user:zed")
    assert not await check("document:2", "viewer", "user:anne")
    contextual = {"tuple_keys": [tuple_key("group:eng", "member", "user:anne")]}
    assert await check("document:2", "viewer", "user:anne", contextual_tuples=contextual)

    batch = await client.post(
        f"{base}/batch-check",
        json={
            "checks": [
                {
                    "tuple_key": tuple_key("document:1", "viewer", "user:anne"),
                    "correlation_id": "a",
                },
                {"tuple_key": tuple_key("document:1", "viewer", "user:bob"), "correlation_id": "b"},
                {"tuple_key": tuple_key("document:1", "nope", "user:bob"), "correlation_id": "c"},
            ]
        },
        headers=admin.headers,
    )
    result = batch.json()["result"]
    assert result["a"] == {"allowed": True}
    assert result["b"] == {"allowed": False}
    assert result["c"]["error"]["input_error"] == "validation_error"

    objects = await client.post(
        f"{base}/list-objects",
        json={"type": "document", "relation": "viewer", "user": "user:bob"},
        headers=admin.headers,
    )
    assert sorted(objects.json()["objects"]) == ["document:2", "document:3"]
    users = await client.post(
        f"{base}/list-users",
        json={
            "object": {"type": "document", "id": "2"},
            "relation": "viewer",
            "user_filters": [{"type": "user"}],
        },
        headers=admin.headers,
    )
    assert users.json()["users"] == [{"object": {"type": "user", "id": "bob"}}]
    expand = await client.post(
        f"{base}/expand",
        json={"tuple_key": {"object": "document:1", "relation": "owner"}},
        headers=admin.headers,
    )
    assert expand.status_code == 200, expand.text
    assert "root" in expand.json()["tree"]

    read = await client.post(
        f"{base}/read", json={"tuple_key": {"object": "document:1"}}, headers=admin.headers
    )
    assert [t["key"] for t in read.json()["tuples"]] == [writes[0]]
    changes = (await client.get(f"{base}/changes", headers=admin.headers)).json()
    assert [c["operation"] for c in changes["changes"]] == ["TUPLE_OPERATION_WRITE"] * 4
    assert changes["continuation_token"]


async def test_openfga_errors_and_status_codes(client: httpx.AsyncClient, admin: Login) -> None:
    store_id, _ = await _store_with_model(client, admin)
    base = f"/stores/{store_id}"
    h = admin.headers
    anne = tuple_key("document:1", "owner", "user:anne")
    await client.post(f"{base}/write", json={"writes": {"tuple_keys": [anne]}}, headers=h)

    duplicate = await client.post(
        f"{base}/write", json={"writes": {"tuple_keys": [anne]}}, headers=h
    )
    body = assert_openfga_error(duplicate, 400, "write_failed_due_to_invalid_input")
    assert "cannot write a tuple which already exists" in body["message"]
    ignored = await client.post(
        f"{base}/write",
        json={"writes": {"tuple_keys": [anne], "on_duplicate": "ignore"}},
        headers=h,
    )
    assert ignored.status_code == 200
    missing = tuple_key("document:9", "owner", "user:anne")
    assert_openfga_error(
        await client.post(f"{base}/write", json={"deletes": {"tuple_keys": [missing]}}, headers=h),
        400,
        "write_failed_due_to_invalid_input",
    )
    assert (
        await client.post(
            f"{base}/write",
            json={"deletes": {"tuple_keys": [missing], "on_missing": "ignore"}},
            headers=h,
        )
    ).status_code == 200
    assert_openfga_error(
        await client.post(f"{base}/write", json={}, headers=h), 400, "invalid_write_input"
    )
    invalid = await client.post(
        f"{base}/write",
        json={"writes": {"tuple_keys": [tuple_key("document:1", "owner", "group:eng#member")]}},
        headers=h,
    )
    assert_openfga_error(invalid, 400, "validation_error")  # as OpenFGA's Write API answers
    assert_openfga_error(
        await client.post(
            f"{base}/check",
            json={"tuple_key": tuple_key("document:1", "viewer", "user:a"), "unknown": 1},
            headers=h,
        ),
        400,
        "validation_error",
    )
    assert_openfga_error(
        await client.post(f"{base}/read", json={"continuation_token": "bogus"}, headers=h),
        400,
        "invalid_continuation_token",
    )
    assert_openfga_error(
        await client.post(
            "/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV/check",
            json={"tuple_key": tuple_key("document:1", "viewer", "user:a")},
            headers=h,
        ),
        404,
        "store_id_not_found",
    )
    assert_openfga_error(
        await client.get("/stores/not-a-store-id", headers=h), 400, "validation_error"
    )
    assert_openfga_error(
        await client.get(f"{base}/authorization-models/01ARZ3NDEKTSV4RRFFQ69G5FAV", headers=h),
        400,
        "authorization_model_not_found",
    )
    bad_model = {
        "schema_version": "1.1",
        "type_definitions": [
            {
                "type": "document",
                "relations": {"viewer": {"computedUserset": {"relation": "missing"}}},
            }
        ],
    }
    assert_openfga_error(
        await client.post(f"{base}/authorization-models", json=bad_model, headers=h),
        400,
        "validation_error",
    )


async def test_every_check_through_the_api_is_in_the_decision_log(
    app: FastAPI, client: httpx.AsyncClient, admin: Login
) -> None:
    store_id, model_id = await _store_with_model(client, admin)
    base = f"/stores/{store_id}"
    anne = tuple_key("document:1", "owner", "user:anne")
    await client.post(
        f"{base}/write", json={"writes": {"tuple_keys": [anne]}}, headers=admin.headers
    )
    allowed = await client.post(
        f"{base}/check",
        json={"tuple_key": tuple_key("document:1", "viewer", "user:anne")},
        headers=admin.headers,
    )
    denied = await client.post(
        f"{base}/check",
        json={"tuple_key": tuple_key("document:1", "viewer", "user:bob")},
        headers=admin.headers,
    )
    # Bastion's own role checks are in the decision log too: keep this store's decisions.
    (allowed_row,) = [
        r
        for r in await audit_rows(app, "authz:check:allowed")
        if r["details"]["store_id"] == store_id
    ]
    (denied_row,) = [
        r
        for r in await audit_rows(app, "authz:check:denied")
        if r["details"]["store_id"] == store_id
    ]
    assert allowed_row["request_id"] == allowed.headers["x-request-id"]
    assert denied_row["request_id"] == denied.headers["x-request-id"]
    for row in (allowed_row, denied_row):
        assert row["details"]["store_id"] == store_id
        assert row["details"]["model_id"] == model_id
        assert row["details"]["latency_ms"] >= 0
        assert row["actor"].startswith("user:")
        assert row["reason"]
    assert denied_row["outcome"] == "failure"


async def test_explain_says_why(client: httpx.AsyncClient, admin: Login) -> None:
    store_id, _ = await _store_with_model(client, admin)
    base = f"/stores/{store_id}"
    anne = tuple_key("document:1", "owner", "user:anne")
    await client.post(
        f"{base}/write", json={"writes": {"tuple_keys": [anne]}}, headers=admin.headers
    )
    yes = await client.post(
        f"{base}/explain",
        json={"tuple_key": tuple_key("document:1", "viewer", "user:anne")},
        headers=admin.headers,
    )
    assert yes.status_code == 200, yes.text
    assert yes.json()["allowed"] is True
    assert yes.json()["path"] == ["document:1#owner@user:anne"]
    no = await client.post(
        f"{base}/explain",
        json={"tuple_key": tuple_key("document:1", "viewer", "user:bob")},
        headers=admin.headers,
    )
    assert no.json()["allowed"] is False
    assert no.json()["path"] == []
    assert no.json()["tree"]["outcome"] == "denied"


NAUGHTY = Path(__file__).resolve().parents[3] / "shared/conformance/payloads/blns.json"


async def test_naughty_strings_never_cause_a_server_error(
    client: httpx.AsyncClient, admin: Login
) -> None:
    store_id, _ = await _store_with_model(client, admin)
    base = f"/stores/{store_id}"
    lines = [str(s) for s in json.loads(NAUGHTY.read_text(encoding="utf-8")) if s][:60]
    for text in lines:
        bodies = [
            ("POST", "/stores", {"name": text}),
            (
                "POST",
                f"{base}/check",
                {"tuple_key": tuple_key(f"document:{text}", "viewer", f"user:{text}")},
            ),
            (
                "POST",
                f"{base}/write",
                {
                    "writes": {
                        "tuple_keys": [tuple_key(f"document:{text}", "owner", f"user:{text}")]
                    }
                },
            ),
            (
                "POST",
                f"{base}/read",
                {"tuple_key": {"object": text}, "continuation_token": text[:500]},
            ),
            (
                "POST",
                f"{base}/list-objects",
                {"type": text, "relation": "viewer", "user": f"user:{text}"},
            ),
            ("GET", f"/stores/{quote(text, safe='')}", None),
        ]
        for method, path, body in bodies:
            response = await client.request(method, path, json=body, headers=admin.headers)
            assert response.status_code < 500, (method, path, text, response.text)


async def test_cascade_delete_of_an_object_or_a_user(
    client: httpx.AsyncClient, admin: Login, user: Account
) -> None:
    store_id, _ = await _store_with_model(client, admin)
    base = f"/stores/{store_id}"
    writes = [
        tuple_key("group:eng", "member", "user:anne"),
        tuple_key("document:1", "viewer", "group:eng#member"),
        tuple_key("document:2", "owner", "user:anne"),
        tuple_key("document:2", "viewer", "user:bob"),
    ]
    await client.post(
        f"{base}/write", json={"writes": {"tuple_keys": writes}}, headers=admin.headers
    )
    gone = await client.post(
        f"{base}/cascade-delete", json={"object": "group:eng"}, headers=admin.headers
    )
    assert gone.json() == {"deleted": 2}
    anne = await client.post(
        f"{base}/cascade-delete", json={"user": "user:anne"}, headers=admin.headers
    )
    assert anne.json() == {"deleted": 1}
    left = await client.post(f"{base}/read", json={}, headers=admin.headers)
    assert [t["key"] for t in left.json()["tuples"]] == [writes[3]]
    assert_openfga_error(
        await client.post(
            f"{base}/cascade-delete",
            json={"object": "document:2", "user": "user:bob"},
            headers=admin.headers,
        ),
        400,
        "validation_error",
    )
    session = await login(client, user)
    assert_openfga_error(
        await client.post(
            f"{base}/cascade-delete", json={"user": "user:bob"}, headers=session.headers
        ),
        403,
        "forbidden",
    )


async def test_stores_bastion_manages_are_read_only_through_the_api(
    app: FastAPI, client: httpx.AsyncClient, admin: Login
) -> None:
    reserved = "0000000000000000000SYSTEM0"
    await app.state.services.authz.store.ensure_store(reserved, "bastion")
    base = f"/stores/{reserved}"
    h = admin.headers
    refused = [
        await client.delete(base, headers=h),
        await client.post(f"{base}/authorization-models", json=MODEL, headers=h),
        await client.post(
            f"{base}/write",
            json={"writes": {"tuple_keys": [tuple_key("document:1", "owner", "user:me")]}},
            headers=h,
        ),
        await client.post(f"{base}/cascade-delete", json={"user": "user:me"}, headers=h),
    ]
    for response in refused:
        assert_openfga_error(response, 403, "forbidden")
    assert (await client.get(base, headers=h)).status_code == 200  # readable


async def test_check_bodies_are_parsed_after_authentication_with_fastapis_errors(
    client: httpx.AsyncClient, admin: Login
) -> None:
    store_id, _ = await _store_with_model(client, admin)
    path = f"/stores/{store_id}/check"
    json_headers = {"content-type": "application/json"}
    # Without credentials nothing is said about the body's shape (malformed JSON is refused by
    # the middleware before any route, for everyone).
    for content in (b"", b'{"tuple_key": 1}', b"[1]"):
        anonymous = await client.post(path, content=content, headers=json_headers)
        assert_openfga_error(anonymous, 401, "unauthenticated")
    h = {**admin.headers, **json_headers}
    empty = await client.post(path, content=b"", headers=h)
    assert assert_openfga_error(empty, 400, "validation_error")["message"] == (
        "invalid request: : Field required"
    )
    bad_user = {"tuple_key": tuple_key("document:1", "viewer", "a b")}
    message = assert_openfga_error(
        await client.post(path, json=bad_user, headers=h), 400, "validation_error"
    )["message"]
    assert message.startswith("invalid request: tuple_key.user: "), message
    listed = await client.post(path, json=[1], headers=h)
    assert_openfga_error(listed, 400, "validation_error")
    good = {"tuple_key": tuple_key("document:1", "viewer", "user:anne")}
    answer = await client.post(path, json=good, headers=admin.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"allowed": False, "resolution": ""}


async def test_checks_are_served_first_with_fastapis_answers(
    app: FastAPI, client: httpx.AsyncClient, admin: Login
) -> None:
    """Check and explain are plain routes tried before every other route; what a FastAPI
    route answered (405 with Allow, path validation, the route template in the metrics)
    is unchanged."""
    from bastion.authz.api._decision import DecisionRoute  # noqa: PLC0415

    # Before every FastAPI route (other plain routes, such as identity's, may share the front).
    routes = app.router.routes
    front = routes[: next(n for n, r in enumerate(routes) if isinstance(r, APIRoute))]
    decisions = [getattr(r, "path", None) for r in front if isinstance(r, DecisionRoute)]
    assert decisions == ["/stores/{store_id}/check", "/stores/{store_id}/explain"]
    assert [r for r in routes if isinstance(r, DecisionRoute)] == [
        r for r in front if isinstance(r, DecisionRoute)
    ]
    store_id, _ = await _store_with_model(client, admin)
    h = admin.headers
    for name in ("check", "explain"):
        wrong = await client.get(f"/stores/{store_id}/{name}", headers=h)
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "POST"
        too_long = await client.post(
            f"/stores/{'A' * 65}/{name}",
            json={"tuple_key": tuple_key("document:1", "viewer", "user:a")},
            headers=h,
        )
        message = assert_openfga_error(too_long, 400, "validation_error")["message"]
        assert message == (
            "invalid request: path.store_id: String should have at most 64 characters"
        )
    answer = await client.post(
        f"/stores/{store_id}/check",
        json={"tuple_key": tuple_key("document:1", "viewer", "user:a")},
        headers=h,
    )
    assert answer.status_code == 200
    assert answer.content == b'{"allowed":false,"resolution":""}'
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"]
    series = app.state.services.metrics._series
    assert ("/stores/{store_id}/check", "POST") in series


async def test_the_per_user_budget_applies_to_checks_and_explains(
    tmp_path: Path,
    database_url: str,
    client: httpx.AsyncClient,
    admin: Login,
    user: Account,
) -> None:
    """The decision routes resolve their caller without FastAPI's sub-response; the caller's
    per-user budget is still taken on every check and explain (429 once spent, for a
    ``query_users`` service account and an administrator alike), and an answer carries only
    the middleware's per-IP RateLimit fields, as the FastAPI route's did."""
    store_id, _ = await _store_with_model(client, admin)
    session = await login(client, user)
    me = (await client.get("/v1/account", headers=session.headers)).json()["id"]
    budget = 3
    settings = identity_settings(
        tmp_path / "budget",
        database_url=database_url,
        mfa=MfaSettings(required_for_admins=False),
        authz=AuthzSettings(query_users=(me,)),
        ratelimit={
            "policies": {
                "api-user": {"limit": budget, "window_seconds": 60},
                "api-ip": {"limit": 10_000},
            }
        },
    )
    body = {"tuple_key": tuple_key("document:1", "viewer", "user:a")}
    async with running_app(settings) as other, client_for(other) as service:
        for caller in (session, admin):
            for name in ("check", "explain"):
                path = f"/stores/{store_id}/{name}"
                answers = [
                    await service.post(path, json=body, headers=caller.headers)
                    for _ in range(budget if name == "check" else 1)
                ]
                if name == "check":
                    assert [a.status_code for a in answers] == [200] * budget
                    for answer in answers:
                        assert not any(
                            v.startswith('"api-user"')
                            for v in answer.headers.get_list("ratelimit-policy")
                        )
                refused = answers[-1] if name == "explain" else None
                if refused is None:
                    refused = await service.post(path, json=body, headers=caller.headers)
                assert refused.status_code == 429, refused.text
                assert int(refused.headers["retry-after"]) >= 1
