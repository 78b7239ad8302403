"""OpenFGA's consolidated conformance suite through Bastion's HTTP API, with ``openfga-sdk``.

A real ``bastion serve`` per backend (SQLite, PostgreSQL), the official Python client pointed at
it with a Bastion access token. Harness rules as in the engine runner
(``../shared/conformance/README.md``): stages share a store, each writes a new model and its
tuples (tuples the current model rejects are ignored); a single-stage test with at most 100
tuples runs again with every tuple contextual; list answers compare ignoring order and every
listed object or user must check as allowed; ``errorCode`` assertions expect OpenFGA's error.

The PostgreSQL run is marked ``slow``: it is the same suite over the same HTTP path, and
creating its database adds a few seconds per module.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import asyncpg
import pytest
from openfga_sdk import ClientConfiguration, OpenFgaClient
from openfga_sdk.client.models import (
    ClientBatchCheckItem,
    ClientBatchCheckRequest,
    ClientCheckRequest,
    ClientListObjectsRequest,
    ClientTuple,
)
from openfga_sdk.client.models.list_users_request import ClientListUsersRequest
from openfga_sdk.credentials import CredentialConfiguration, Credentials
from openfga_sdk.exceptions import ApiException
from openfga_sdk.models import CreateStoreRequest, FgaObject, RelationshipCondition, UserTypeFilter
from sqlalchemy.engine import make_url
from tests.common.authz_server import AuthzServer, start_authz_server, stop_authz_server
from tests.conformance.authz.openfga_suite import (
    ERROR_NAMES,
    KINDS,
    load_tests,
    parse_model,
    reruns_contextually,
    to_tuple,
)
from tests.conftest import POSTGRES_URL

from bastion.authz.tuples import Tuple

TESTS = load_tests()
WRITE_CHUNK = 100
#: Errors of a tuple write that mean "the current model rejects this tuple" (ignored).
REJECTED_TUPLE = {"invalid_tuple", "validation_error", "type_not_found", "relation_not_found"}


def _postgres(action: str, name: str) -> None:
    async def run() -> None:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=5)
        try:
            # The name is generated below from hex digits only (DDL takes no parameters).
            await admin.execute(
                f'CREATE DATABASE "{name}"'
                if action == "create"
                else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            )
        finally:
            await admin.close()

    asyncio.run(run())


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=[pytest.mark.postgres, pytest.mark.slow]),
    ],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthzServer]:
    data_dir = tmp_path_factory.mktemp(f"authz-http-{request.param}")
    if request.param == "sqlite":
        live = start_authz_server(data_dir)
        yield live
        stop_authz_server(live)
        return
    name = f"bastion_t_{secrets.token_hex(6)}"
    try:
        _postgres("create", name)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL is not reachable ({exc})")
    url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
    live = start_authz_server(data_dir, url.render_as_string(hide_password=False))
    try:
        yield live
    finally:
        stop_authz_server(live)
        _postgres("drop", name)


def client_for(server: AuthzServer) -> OpenFgaClient:
    return OpenFgaClient(
        ClientConfiguration(
            api_url=server.url,
            credentials=Credentials(
                method="api_token",
                configuration=CredentialConfiguration(api_token=server.access_token),
            ),
        )
    )


def client_tuple(t: Tuple) -> ClientTuple:
    condition = None
    if t.condition:
        condition = RelationshipCondition(name=t.condition, context=dict(t.context or {}))
    return ClientTuple(user=t.user, relation=t.relation, object=t.object, condition=condition)


def _user_string(user: Any) -> str:
    if user.object is not None:
        return f"{user.object.type}:{user.object.id}"
    if user.wildcard is not None:
        return f"{user.wildcard.type}:*"
    return f"{user.userset.type}:{user.userset.id}#{user.userset.relation}"


class Runner:
    """Runs one OpenFGA test through the SDK; collects failures instead of stopping."""

    def __init__(self, fga: OpenFgaClient, name: str) -> None:
        self.fga = fga
        self.name = name
        self.failures: list[str] = []

    async def new_store(self, variant: str) -> None:
        store = await self.fga.create_store(CreateStoreRequest(name=f"{self.name[:200]}-{variant}"))
        self.fga.set_store_id(store.id)

    async def write_model(self, dsl: str) -> None:
        written = await self.fga.write_authorization_model(parse_model(dsl))
        self.fga.set_authorization_model_id(written.authorization_model_id)

    async def write_tuples(self, tuples: Sequence[Tuple]) -> None:
        for start in range(0, len(tuples), WRITE_CHUNK):
            chunk = tuples[start : start + WRITE_CHUNK]
            try:
                await self.fga.write_tuples([client_tuple(t) for t in chunk])
            except ApiException as error:
                if error.code not in REJECTED_TUPLE:
                    raise
                for t in chunk:  # one by one, ignoring the tuples the model rejects
                    try:
                        await self.fga.write_tuples([client_tuple(t)])
                    except ApiException as single:
                        if single.code not in REJECTED_TUPLE:
                            raise

    async def run_stage(self, stage: Mapping[str, Any], label: str, extra: Sequence[Tuple]) -> None:
        runners = {
            "checkAssertions": self.check,
            "listObjectsAssertions": self.list_objects,
            "listUsersAssertions": self.list_users,
        }
        for kind in KINDS:
            for number, assertion in enumerate(stage.get(kind) or ()):
                contextual = [
                    *extra,
                    *(to_tuple(t) for t in assertion.get("contextualTuples") or ()),
                ]
                where = (
                    f"{label} {kind}#{number} {assertion.get('tuple') or assertion.get('request')}"
                )
                try:
                    problem = await runners[kind](assertion, contextual)
                except ApiException as error:
                    expected = ERROR_NAMES.get(assertion.get("errorCode", -1))
                    problem = None if error.code == expected else f"error {error.code}: {error}"
                else:
                    if problem is None and assertion.get("errorCode") is not None:
                        problem = f"expected error {assertion['errorCode']}"
                if problem:
                    self.failures.append(f"{where}: {problem}")

    async def check(self, assertion: Mapping[str, Any], contextual: list[Tuple]) -> str | None:
        key = assertion["tuple"]
        answer = await self.fga.check(
            ClientCheckRequest(
                user=key["user"],
                relation=key["relation"],
                object=key["object"],
                contextual_tuples=[client_tuple(t) for t in contextual] or None,
                context=assertion.get("context"),
            )
        )
        if assertion.get("errorCode") is None and answer.allowed != assertion["expectation"]:
            return f"allowed={answer.allowed}, expected {assertion['expectation']}"
        return None

    async def all_allowed(
        self,
        pairs: list[tuple[str, str]],
        relation: str,
        assertion: Mapping[str, Any],
        contextual: list[Tuple],
    ) -> str | None:
        """Every (object, user) listed must check as allowed (batch-check, 50 per call)."""
        if not pairs:
            return None
        items = [
            ClientBatchCheckItem(
                user=user,
                relation=relation,
                object=obj,
                contextual_tuples=[client_tuple(t) for t in contextual] or None,
                context=assertion.get("context"),
            )
            for obj, user in pairs
        ]
        result = await self.fga.batch_check(ClientBatchCheckRequest(checks=items))
        denied = [r.request for r in result.result if not r.allowed]
        return f"listed but not allowed: {denied}" if denied else None

    async def list_objects(
        self, assertion: Mapping[str, Any], contextual: list[Tuple]
    ) -> str | None:
        request = assertion["request"]
        answer = await self.fga.list_objects(
            ClientListObjectsRequest(
                user=request["user"],
                relation=request["relation"],
                type=request["type"],
                contextual_tuples=[client_tuple(t) for t in contextual] or None,
                context=assertion.get("context") or request.get("context"),
            )
        )
        if assertion.get("errorCode") is not None:
            return None
        got, expected = set(answer.objects), set(assertion.get("expectation") or ())
        if got != expected:
            return f"got {sorted(got)}, expected {sorted(expected)}"
        pairs = [(obj, request["user"]) for obj in sorted(got)]
        return await self.all_allowed(pairs, request["relation"], assertion, contextual)

    async def list_users(self, assertion: Mapping[str, Any], contextual: list[Tuple]) -> str | None:
        request = assertion["request"]
        otype, _, oid = request["object"].partition(":")
        filters = []
        for text in request["filters"]:
            ftype, _, frelation = text.partition("#")
            filters.append(UserTypeFilter(type=ftype, relation=frelation or None))
        answer = await self.fga.list_users(
            ClientListUsersRequest(
                object=FgaObject(type=otype, id=oid),
                relation=request["relation"],
                user_filters=filters,
                contextual_tuples=[client_tuple(t) for t in contextual] or None,
                context=assertion.get("context"),
            )
        )
        if assertion.get("errorCode") is not None:
            return None
        got = {_user_string(u) for u in answer.users}
        expected = set(assertion.get("expectation") or ())
        if got != expected:
            return f"got {sorted(got)}, expected {sorted(expected)}"
        pairs = [(request["object"], user) for user in sorted(got)]
        return await self.all_allowed(pairs, request["relation"], assertion, contextual)


async def run_test(server: AuthzServer, test: Mapping[str, Any]) -> list[str]:
    async with client_for(server) as fga:
        runner = Runner(fga, test["name"])
        await runner.new_store("stored")
        for index, stage in enumerate(test["stages"]):
            await runner.write_model(stage["model"])
            await runner.write_tuples([to_tuple(t) for t in stage.get("tuples") or ()])
            await runner.run_stage(stage, f"stage {index} stored", ())
        if reruns_contextually(test):
            (stage,) = test["stages"]
            await runner.new_store("contextual")
            await runner.write_model(stage["model"])
            stage_tuples = [to_tuple(t) for t in stage.get("tuples") or ()]
            await runner.run_stage(stage, "contextual", stage_tuples)
        return runner.failures


@pytest.mark.parametrize("name", [t["name"] for t in TESTS])
async def test_openfga_conformance_over_http(server: AuthzServer, name: str) -> None:
    test = next(t for t in TESTS if t["name"] == name)
    failures = await run_test(server, test)
    assert not failures, "\n".join(failures)


def test_the_http_suite_is_not_vacuous() -> None:
    """The suite file is there: without it the parametrized test above would run nothing."""
    assert len(TESTS) == 137
