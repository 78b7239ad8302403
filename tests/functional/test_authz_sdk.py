"""``bastion.sdk.authz``: a small FastAPI service enforcing decisions with ``require(...)``,
embedded (Bastion's service in-process) and remote (a Bastion server over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, Request
from tests.functional.identity_helpers import Login, audit_rows, client_for, login, running_app
from tests.functional.identity_helpers import setup_admin as make_admin
from tests.functional.test_authz_api import authz_settings

from bastion.audit.events import AuditEvent, EventType
from bastion.authz.errors import AuthorizationUnavailable
from bastion.authz.service import AuthzService, RequestInfo
from bastion.authz.store import SqlAuthzStore
from bastion.authz.tuples import Tuple
from bastion.clock import FrozenClock
from bastion.http.handlers import include as install_problem_handlers
from bastion.http.problems import PROBLEM_CONTENT_TYPE
from bastion.sdk.authz import (
    Authorizer,
    Decision,
    EmbeddedChecker,
    RemoteChecker,
    Requirement,
    requirement_of,
)
from bastion.storage import Database

MODEL: dict[str, Any] = {
    "schema_version": "1.1",
    "type_definitions": [
        {"type": "user"},
        {
            "type": "document",
            "relations": {"can_view": {"this": {}}},
            "metadata": {
                "relations": {
                    "can_view": {
                        "directly_related_user_types": [
                            {"type": "user"},
                            {"type": "user", "condition": "non_expired_grant"},
                        ]
                    }
                }
            },
        },
    ],
    "conditions": {
        "non_expired_grant": {
            "name": "non_expired_grant",
            "expression": "current_time < grant_time + grant_duration",
            "parameters": {
                "current_time": {"type_name": "TYPE_NAME_TIMESTAMP"},
                "grant_time": {"type_name": "TYPE_NAME_TIMESTAMP"},
                "grant_duration": {"type_name": "TYPE_NAME_DURATION"},
            },
        }
    },
}
INFO = RequestInfo()
#: Owners known only to the service's own rows (no tuple in the store).
OWNERS = {"5": "anne"}


class Recorder:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class Caller:
    """The test's stand-in for an authenticated principal (a ``Principal``-like value)."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id


async def caller(x_test_user: str | None = Header(default=None)) -> Caller:
    if x_test_user is None:
        from bastion.http.errors import NotAuthenticated  # noqa: PLC0415

        raise NotAuthenticated
    return Caller(x_test_user)


def service_app(authorizer: Authorizer) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    can_view = authorizer.require("can_view", "document", from_path="doc_id")
    can_view_hidden = authorizer.require(
        "can_view", "document", from_path="doc_id", hide_existence=True
    )
    can_view_query = authorizer.require("can_view", "document", from_query="doc")
    can_view_first = authorizer.require("can_view", "document", object_id="1")

    async def owned(_: Request, doc_id: str) -> list[Tuple]:
        """The service's own row says who owns it (a contextual tuple, for this check only)."""
        owner = OWNERS.get(doc_id)
        return [] if owner is None else [Tuple(f"document:{doc_id}", "can_view", f"user:{owner}")]

    can_view_owned = authorizer.require(
        "can_view", "document", from_path="doc_id", hide_existence=True, contextual=owned
    )

    @app.get("/documents/{doc_id}")
    async def read_document(doc_id: str, decision: Decision = Depends(can_view)) -> dict[str, str]:
        return {"id": doc_id, "checked": decision.object}

    @app.get("/secret/{doc_id}")
    async def read_secret(doc_id: str, _: Decision = Depends(can_view_hidden)) -> dict[str, str]:
        return {"id": doc_id}

    @app.get("/search")
    async def search(_: Decision = Depends(can_view_query)) -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/first")
    async def first(decision: Decision = Depends(can_view_first)) -> dict[str, str]:
        return {"checked": decision.object}

    @app.get("/owned/{doc_id}")
    async def read_owned(doc_id: str, _: Decision = Depends(can_view_owned)) -> dict[str, str]:
        return {"id": doc_id}

    @app.get("/visible")
    async def visible(request: Request, who: Caller = Depends(caller)) -> dict[str, list[str]]:
        # Narrows instead of refusing: the ids the caller may view.
        ids = [
            d
            for d in ("1", "2", "a:b")
            if await authorizer.allows(request, who, "can_view", "document", d)
        ]
        return {"ids": ids}

    return app


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def embedded(
    database: Database, clock: FrozenClock
) -> AsyncIterator[tuple[httpx.AsyncClient, AuthzService, str, Recorder]]:
    recorder = Recorder()
    service = AuthzService(
        SqlAuthzStore(database, clock=clock),
        audit=recorder,
        clock=clock,
        staleness_seconds=1.0,
        max_cached_stores=4,
        decision_sample_rate=1.0,
    )
    store = await service.create_store("app", INFO)
    await service.write_model(store.id, MODEL, INFO)
    await service.write(store.id, writes=[Tuple("document:1", "can_view", "user:anne")], info=INFO)
    authorizer = Authorizer(EmbeddedChecker(service, store.id), principal=caller, clock=clock)
    transport = httpx.ASGITransport(app=service_app(authorizer))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        yield client, service, store.id, recorder


def as_user(name: str) -> dict[str, str]:
    return {"X-Test-User": name}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    assert response.json()["code"] == code


async def test_require_allows_only_what_the_model_grants(
    embedded: tuple[httpx.AsyncClient, AuthzService, str, Recorder],
) -> None:
    client, _, _, recorder = embedded
    allowed = await client.get("/documents/1", headers=as_user("anne"))
    assert allowed.status_code == 200
    assert allowed.json() == {"id": "1", "checked": "document:1"}
    assert_problem(await client.get("/documents/1", headers=as_user("bob")), 403, "forbidden")
    assert_problem(await client.get("/documents/2", headers=as_user("anne")), 403, "forbidden")
    assert_problem(await client.get("/documents/1"), 401, "not_authenticated")
    # The decision log has the SDK's checks, the denials always.
    kinds = [
        (e.type, e.details["source"])
        for e in recorder.events
        if e.type.value.startswith("authz:check")
    ]
    assert (EventType.AUTHZ_CHECK_ALLOWED, "sdk") in kinds
    assert kinds.count((EventType.AUTHZ_CHECK_DENIED, "sdk")) == 2


async def test_hidden_objects_answer_404_for_a_denial(
    embedded: tuple[httpx.AsyncClient, AuthzService, str, Recorder],
) -> None:
    client, _, _, _ = embedded
    assert (await client.get("/secret/1", headers=as_user("anne"))).status_code == 200
    denied = await client.get("/secret/1", headers=as_user("bob"))
    missing = await client.get("/secret/404", headers=as_user("bob"))
    assert_problem(denied, 404, "not_found")
    assert denied.json()["detail"] == missing.json()["detail"]  # existence not disclosed


async def test_malformed_or_missing_ids_are_denied_not_errors(
    embedded: tuple[httpx.AsyncClient, AuthzService, str, Recorder],
) -> None:
    client, _, _, _ = embedded
    for doc in ("1#can_view@user:anne", "1:2", "a b", "x" * 300):
        response = await client.get("/search", params={"doc": doc}, headers=as_user("anne"))
        assert_problem(response, 403, "forbidden")
    assert_problem(await client.get("/search", headers=as_user("anne")), 403, "forbidden")
    # A user id that would forge a userset is refused too.
    assert_problem(await client.get("/documents/1", headers=as_user("anne#x")), 403, "forbidden")
    assert (
        await client.get("/search", params={"doc": "1"}, headers=as_user("anne"))
    ).status_code == 200


async def test_time_bound_grants_expire_by_themselves(
    embedded: tuple[httpx.AsyncClient, AuthzService, str, Recorder], clock: FrozenClock
) -> None:
    client, service, store_id, _ = embedded
    grant = Tuple(
        "document:7",
        "can_view",
        "user:carl",
        "non_expired_grant",
        {"grant_time": clock.now().isoformat(), "grant_duration": "1h"},
    )
    await service.write(store_id, writes=[grant], info=INFO)
    assert (await client.get("/documents/7", headers=as_user("carl"))).status_code == 200
    clock.advance(timedelta(hours=2))
    assert_problem(await client.get("/documents/7", headers=as_user("carl")), 403, "forbidden")


async def test_a_revocation_is_enforced_at_once(
    embedded: tuple[httpx.AsyncClient, AuthzService, str, Recorder],
) -> None:
    client, service, store_id, _ = embedded
    assert (await client.get("/documents/1", headers=as_user("anne"))).status_code == 200
    await service.store.write(store_id, deletes=[Tuple("document:1", "can_view", "user:anne")])
    # Deleted behind the service's back (another process): HIGHER_CONSISTENCY sees it.
    assert_problem(await client.get("/documents/1", headers=as_user("anne")), 403, "forbidden")


async def test_a_constant_object_and_row_ownership(
    embedded: tuple[httpx.AsyncClient, AuthzService, str, Recorder],
) -> None:
    client, _, _, _ = embedded
    first = await client.get("/first", headers=as_user("anne"))
    assert first.json() == {"checked": "document:1"}
    assert_problem(await client.get("/first", headers=as_user("bob")), 403, "forbidden")
    # Ownership from the service's row: the owner passes, anyone else gets the same 404 as
    # for an object that does not exist (existence not disclosed).
    assert (await client.get("/owned/5", headers=as_user("anne"))).status_code == 200
    denied = await client.get("/owned/5", headers=as_user("bob"))
    missing = await client.get("/owned/6", headers=as_user("anne"))
    assert_problem(denied, 404, "not_found")
    assert_problem(missing, 404, "not_found")
    assert denied.json()["detail"] == missing.json()["detail"]
    # The contextual tuple held for that one check only: nothing was written.
    assert (await client.get("/documents/5", headers=as_user("anne"))).status_code == 403


async def test_allows_narrows_without_refusing(
    embedded: tuple[httpx.AsyncClient, AuthzService, str, Recorder],
) -> None:
    client, _, _, recorder = embedded
    assert (await client.get("/visible", headers=as_user("anne"))).json() == {"ids": ["1"]}
    assert (await client.get("/visible", headers=as_user("bob"))).json() == {"ids": []}
    # Each check is in the decision log, like require's (the malformed id never reaches it).
    checked = [e.subject for e in recorder.events if e.type.value.startswith("authz:check")]
    assert checked.count("document:2#can_view@user:anne") == 1
    assert not any("a:b" in (s or "") for s in checked)


def test_every_require_dependency_carries_its_requirement() -> None:
    authorizer = Authorizer(RemoteChecker("https://x", "s", token="t"), principal=caller)
    dependency = authorizer.require("can_view", "document", from_path="id", hide_existence=True)
    assert requirement_of(dependency) == Requirement("can_view", "document", hide_existence=True)
    assert requirement_of(caller) is None
    assert requirement_of(authorizer.require("can_view", "system", object_id="bastion")) == (
        Requirement("can_view", "system", hide_existence=False)
    )
    # A constant id the engine cannot name is refused when the route is declared.
    for bad in ("", "a:b", "a#b", "a b", "x" * 300):
        with pytest.raises(ValueError, match="not a valid object id"):
            authorizer.require("can_view", "system", object_id=bad)


def test_require_needs_exactly_one_id_source() -> None:
    authorizer = Authorizer(RemoteChecker("https://x", "s", token="t"), principal=caller)
    with pytest.raises(ValueError, match="exactly one"):
        authorizer.require("can_view", "document")
    with pytest.raises(ValueError, match="exactly one"):
        authorizer.require("can_view", "document", from_path="a", from_query="b")
    with pytest.raises(ValueError, match="https"):
        RemoteChecker("http://id.example.com", "s", token="t")


async def test_remote_checks_against_a_bastion_server(tmp_path: Path) -> None:
    settings = authz_settings(tmp_path)
    async with running_app(settings) as bastion, client_for(bastion) as api:
        admin: Login = await login(api, await make_admin(bastion, api))
        created = await api.post("/stores", json={"name": "remote"}, headers=admin.headers)
        store_id = created.json()["id"]
        await api.post(
            f"/stores/{store_id}/authorization-models", json=MODEL, headers=admin.headers
        )
        await api.post(
            f"/stores/{store_id}/write",
            json={
                "writes": {
                    "tuple_keys": [
                        {"object": "document:1", "relation": "can_view", "user": "user:anne"}
                    ]
                }
            },
            headers=admin.headers,
        )
        remote = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bastion), base_url="http://testserver"
        )
        checker = RemoteChecker(
            "http://testserver",
            store_id,
            token=admin.access_token,
            client=remote,
            allow_insecure_http=True,
        )
        authorizer = Authorizer(checker, principal=caller)
        app = service_app(authorizer)
        async with (
            remote,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as svc,
        ):
            assert (await svc.get("/documents/1", headers=as_user("anne"))).status_code == 200
            assert_problem(await svc.get("/documents/1", headers=as_user("bob")), 403, "forbidden")
            # Contextual tuples travel to the server (OpenFGA's contextual_tuples.tuple_keys).
            assert (await svc.get("/owned/5", headers=as_user("anne"))).status_code == 200
            assert_problem(await svc.get("/owned/5", headers=as_user("bob")), 404, "not_found")
        rows = await audit_rows(bastion, "authz:check:denied")
        mine = [r["subject"] for r in rows if r["details"]["store_id"] == store_id]
        assert mine == ["document:1#can_view@user:bob", "document:5#can_view@user:bob"]

        # A Bastion that answers an error (here: a token it refuses) gives no decision: 503.
        broken = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bastion), base_url="http://testserver"
        )
        bad = RemoteChecker(
            "http://testserver",
            store_id,
            token="not-a-token",
            client=broken,
            allow_insecure_http=True,
        )
        async with (
            broken,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=service_app(Authorizer(bad, principal=caller))),
                base_url="http://svc",
            ) as svc,
        ):
            assert_problem(
                await svc.get("/documents/1", headers=as_user("anne")),
                503,
                "authorization_unavailable",
            )


async def test_an_unreachable_server_fails_closed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    checker = RemoteChecker(
        "https://id.example.com", "01ARZ3NDEKTSV4RRFFQ69G5FAV", token="t", client=client
    )
    with pytest.raises(AuthorizationUnavailable):
        await checker.check("document:1", "can_view", "user:anne", context={}, scope=None)
    app = service_app(Authorizer(checker, principal=caller))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://s"
    ) as svc:
        answer = await svc.get("/documents/1", headers=as_user("anne"))
        assert_problem(answer, 503, "authorization_unavailable")
    await client.aclose()
