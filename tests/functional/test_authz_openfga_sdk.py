"""The official OpenFGA clients against a real `bastion serve`: the Python ``openfga-sdk``
(``OpenFgaClient``, unchanged) and OpenFGA's own ``fga`` CLI, with a Bastion access token."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openfga_sdk import ClientConfiguration, OpenFgaClient
from openfga_sdk.client.models import (
    ClientBatchCheckItem,
    ClientBatchCheckRequest,
    ClientCheckRequest,
    ClientExpandRequest,
    ClientListObjectsRequest,
    ClientReadChangesRequest,
    ClientTuple,
    ClientWriteRequest,
)
from openfga_sdk.client.models.list_users_request import ClientListUsersRequest
from openfga_sdk.credentials import CredentialConfiguration, Credentials
from openfga_sdk.exceptions import (
    NotFoundException,
    UnauthorizedException,
    ValidationException,
)
from openfga_sdk.models import (
    CreateStoreRequest,
    FgaObject,
    ReadRequestTupleKey,
    RelationshipCondition,
    UserTypeFilter,
)
from tests.common.authz_server import AuthzServer, start_authz_server, stop_authz_server
from tests.common.server import BASTION

FGA = str(Path(BASTION).with_name("fga"))

CONDITION = (
    "condition non_expired_grant(current_time: timestamp, grant_time: timestamp, "
    "grant_duration: duration) {\n  current_time < grant_time + grant_duration\n}\n"
)
DSL = (
    """model
  schema 1.1

type user

type group
  relations
    define member: [user]

type document
  relations
    define owner: [user]
    define viewer: [user, user:*, group#member, user with non_expired_grant] or owner

"""
    + CONDITION
)


@pytest.fixture(scope="module")
def authz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthzServer]:
    server = start_authz_server(tmp_path_factory.mktemp("authz-sdk"))
    yield server
    stop_authz_server(server)


def model_json(tmp_path: Path) -> dict[str, Any]:
    """The DSL in OpenFGA's JSON form, as OpenFGA's own CLI transforms it."""
    source = tmp_path / "model.fga"
    source.write_text(DSL)
    out = subprocess.run(  # noqa: S603 - the fga binary of the venv
        [FGA, "model", "transform", "--file", str(source)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return dict(json.loads(out.stdout))


def client_for(server: AuthzServer, store_id: str | None = None) -> OpenFgaClient:
    config = ClientConfiguration(
        api_url=server.url,
        store_id=store_id,
        credentials=Credentials(
            method="api_token",
            configuration=CredentialConfiguration(api_token=server.access_token),
        ),
    )
    return OpenFgaClient(config)


@pytest.fixture
async def fga(authz_server: AuthzServer, tmp_path: Path) -> AsyncIterator[OpenFgaClient]:
    async with client_for(authz_server) as client:
        store = await client.create_store(CreateStoreRequest(name="sdk-test"))
        client.set_store_id(store.id)
        written = await client.write_authorization_model(model_json(tmp_path))
        client.set_authorization_model_id(written.authorization_model_id)
        yield client


async def test_sdk_stores_and_models(fga: OpenFgaClient, tmp_path: Path) -> None:
    store = await fga.get_store()
    assert store.name == "sdk-test"
    assert store.id in [s.id for s in (await fga.list_stores()).stores]
    latest = await fga.read_latest_authorization_model()
    assert latest.authorization_model.id == fga.get_authorization_model_id()
    assert {t.type for t in latest.authorization_model.type_definitions} == {
        "user",
        "group",
        "document",
    }
    second = await fga.write_authorization_model(model_json(tmp_path))
    models = await fga.read_authorization_models()
    assert [m.id for m in models.authorization_models][:2] == [
        second.authorization_model_id,
        fga.get_authorization_model_id(),
    ]


async def test_sdk_tuples_checks_and_lists(fga: OpenFgaClient) -> None:
    now = datetime.now(UTC)
    await fga.write(
        ClientWriteRequest(
            writes=[
                ClientTuple(user="user:anne", relation="owner", object="document:1"),
                ClientTuple(user="user:bob", relation="member", object="group:eng"),
                ClientTuple(user="group:eng#member", relation="viewer", object="document:2"),
                ClientTuple(
                    user="user:carl",
                    relation="viewer",
                    object="document:3",
                    condition=RelationshipCondition(
                        name="non_expired_grant",
                        context={"grant_time": now.isoformat(), "grant_duration": "1h"},
                    ),
                ),
            ]
        )
    )

    async def allowed(user: str, obj: str, **extra: Any) -> bool:
        answer = await fga.check(
            ClientCheckRequest(user=user, relation="viewer", object=obj, **extra)
        )
        return bool(answer.allowed)

    assert await allowed("user:anne", "document:1")
    assert await allowed("user:bob", "document:2")
    assert not await allowed("user:anne", "document:2")
    in_time = {"current_time": (now + timedelta(minutes=5)).isoformat()}
    too_late = {"current_time": (now + timedelta(hours=2)).isoformat()}
    assert await allowed("user:carl", "document:3", context=in_time)
    assert not await allowed("user:carl", "document:3", context=too_late)  # expired grant
    contextual = [ClientTuple(user="user:anne", relation="member", object="group:eng")]
    assert await allowed("user:anne", "document:2", contextual_tuples=contextual)

    batch = await fga.batch_check(
        ClientBatchCheckRequest(
            checks=[
                ClientBatchCheckItem(user="user:anne", relation="viewer", object="document:1"),
                ClientBatchCheckItem(user="user:bob", relation="viewer", object="document:1"),
            ]
        )
    )
    assert sorted(r.allowed for r in batch.result) == [False, True]

    objects = await fga.list_objects(
        ClientListObjectsRequest(user="user:bob", relation="viewer", type="document")
    )
    assert objects.objects == ["document:2"]
    users = await fga.list_users(
        ClientListUsersRequest(
            object=FgaObject(type="document", id="2"),
            relation="viewer",
            user_filters=[UserTypeFilter(type="user")],
        )
    )
    assert [u.object.id for u in users.users] == ["bob"]
    tree = await fga.expand(ClientExpandRequest(relation="owner", object="document:1"))
    assert tree.tree.root.name == "document:1#owner"

    read = await fga.read(ReadRequestTupleKey(object="document:3"))
    (carl,) = read.tuples
    assert carl.key.condition.name == "non_expired_grant"
    changes = await fga.read_changes(ClientReadChangesRequest(type="document"))
    assert len(changes.changes) == 3  # the group tuple is of another type

    await fga.delete_tuples([ClientTuple(user="user:anne", relation="owner", object="document:1")])
    assert not await allowed("user:anne", "document:1")


async def test_sdk_sees_openfga_errors(fga: OpenFgaClient, authz_server: AuthzServer) -> None:
    anne = ClientTuple(user="user:anne", relation="owner", object="document:1")
    await fga.write_tuples([anne])
    with pytest.raises(ValidationException) as duplicate:
        await fga.write_tuples([anne])
    assert duplicate.value.code == "write_failed_due_to_invalid_input"
    with pytest.raises(ValidationException) as invalid:
        await fga.write_tuples(
            [ClientTuple(user="group:eng#member", relation="owner", object="document:1")]
        )
    assert invalid.value.code == "validation_error"  # as OpenFGA's Write API answers
    with pytest.raises(ValidationException) as unknown:
        await fga.check(ClientCheckRequest(user="user:anne", relation="nope", object="document:1"))
    assert unknown.value.code == "validation_error"

    async with client_for(authz_server, "01ARZ3NDEKTSV4RRFFQ69G5FAV") as other:
        with pytest.raises(NotFoundException):
            await other.get_store()
    config = ClientConfiguration(api_url=authz_server.url, store_id=fga.get_store_id())
    async with OpenFgaClient(config) as anonymous:
        with pytest.raises(UnauthorizedException):
            await anonymous.check(
                ClientCheckRequest(user="user:anne", relation="viewer", object="document:1")
            )


def fga_cli(server: AuthzServer, *args: str) -> Any:
    """Run OpenFGA's ``fga`` CLI against the server; its JSON output."""
    out = subprocess.run(  # noqa: S603 - the fga binary of the venv
        [FGA, *args, "--api-url", server.url, "--api-token", server.access_token],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout)


def test_fga_cli_is_a_second_client(authz_server: AuthzServer, tmp_path: Path) -> None:
    store = fga_cli(authz_server, "store", "create", "--name", "cli-test")
    store_id = store["store"]["id"]
    source = tmp_path / "model.fga"
    source.write_text(DSL)
    model = fga_cli(authz_server, "model", "write", "--store-id", store_id, "--file", str(source))
    assert model["authorization_model_id"]
    fga_cli(
        authz_server, "tuple", "write", "--store-id", store_id, "user:anne", "owner", "document:1"
    )
    check = fga_cli(
        authz_server, "query", "check", "--store-id", store_id, "user:anne", "viewer", "document:1"
    )
    assert check["allowed"] is True
    denied = fga_cli(
        authz_server, "query", "check", "--store-id", store_id, "user:bob", "viewer", "document:1"
    )
    assert denied["allowed"] is False
    objects = fga_cli(
        authz_server,
        "query",
        "list-objects",
        "--store-id",
        store_id,
        "user:anne",
        "viewer",
        "document",
    )
    assert objects["objects"] == ["document:1"]
    tuples = fga_cli(authz_server, "tuple", "read", "--store-id", store_id)
    assert [t["key"]["user"] for t in tuples["tuples"]] == ["user:anne"]
    fga_cli(authz_server, "store", "delete", "--store-id", store_id, "--force")
