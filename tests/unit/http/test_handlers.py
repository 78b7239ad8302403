"""Exception handlers: every error from a route or the router is problem+json, leaking nothing."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.unit.http.helpers import assert_problem, client, stamped

from bastion.errors import BastionError
from bastion.http import handlers
from bastion.http.errors import JsonTooDeep, NotAuthenticated


class Signup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=50)
    password: str = Field(min_length=12)


class Many(BaseModel):
    values: list[int]


class Challenge(NotAuthenticated):
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="bastion"'}


class OtherPackageError(BastionError):
    code = "setup_token_invalid"
    status = 403
    title = "The setup token is not valid"


def build_app(codes: list[str]) -> ASGIApp:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    handlers.include(app)

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"email": body.email}

    @app.post("/many")
    async def many(body: Many) -> dict[str, int]:
        return {"n": len(body.values)}

    @app.get("/http/{status}")
    async def http_error(status: int) -> None:
        raise HTTPException(status, detail="db host 10.1.2.3 refused: password auth failed")

    @app.get("/starlette-404")
    async def starlette_404() -> None:
        raise StarletteHTTPException(404, detail="/srv/bastion/private/file not found")

    @app.get("/bastion/{name}")
    async def bastion_error(name: str) -> None:
        errors: dict[str, BastionError] = {
            "deep": JsonTooDeep(),
            "challenge": Challenge(),
            "other": OtherPackageError("Ask the operator for a new setup token."),
        }
        raise errors[name]

    @app.get("/things")
    async def things() -> list[str]:
        return []

    inner = stamped(app)

    async def remember_code(scope: Scope, receive: Receive, send: Send) -> None:
        await inner(scope, receive, send)
        codes.append(scope["state"].get("problem_code"))

    return remember_code


async def request(method: str, path: str, **kwargs: Any) -> tuple[Any, list[str]]:
    codes: list[str] = []
    async with client(build_app(codes)) as http:
        response = await http.request(method, path, **kwargs)
    return response, codes


async def test_bastion_errors_keep_status_code_and_detail() -> None:
    response, codes = await request("GET", "/bastion/deep")
    body = assert_problem(response, 400, "json_too_deep")
    assert body["detail"] == JsonTooDeep.title
    assert codes == ["json_too_deep"]
    response, _ = await request("GET", "/bastion/other")
    body = assert_problem(response, 403, "setup_token_invalid")
    assert body["detail"] == "Ask the operator for a new setup token."


async def test_error_headers_are_sent() -> None:
    response, _ = await request("GET", "/bastion/challenge")
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="bastion"'


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "invalid_request"),
        (401, "not_authenticated"),
        (403, "forbidden"),
        (404, "not_found"),
        (405, "method_not_allowed"),
        (413, "body_too_large"),
        (415, "unsupported_media_type"),
        (422, "validation_failed"),
    ],
)
async def test_http_exception_detail_is_replaced(status: int, code: str) -> None:
    response, codes = await request("GET", f"/http/{status}")
    assert_problem(response, status, code)
    for fragment in ("10.1.2.3", "password", "db host"):
        assert fragment not in response.text
    assert codes == [code]


async def test_starlette_http_exception_detail_is_replaced() -> None:
    response, _ = await request("GET", "/starlette-404")
    assert_problem(response, 404, "not_found")
    assert "/srv/bastion" not in response.text


async def test_router_404_and_405() -> None:
    response, _ = await request("GET", "/no/such/path")
    assert_problem(response, 404, "not_found")
    response, _ = await request("DELETE", "/things")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


async def test_validation_errors_omit_the_input() -> None:
    response, codes = await request(
        "POST", "/signup", json={"email": "a@example.com", "password": "hunter2", "is_admin": True}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert codes == ["validation_failed"]
    assert "hunter2" not in response.text
    assert {tuple(error["loc"]) for error in body["errors"]} == {
        ("body", "password"),
        ("body", "is_admin"),
    }
    for error in body["errors"]:
        assert set(error) == {"loc", "msg", "type"}


async def test_long_invalid_input_is_not_echoed() -> None:
    secret = "s3cr3t-" * 1000
    response, _ = await request("POST", "/signup", json={"email": secret, "password": "x" * 20})
    assert_problem(response, 422, "validation_failed")
    assert "s3cr3t" not in response.text


async def test_error_list_is_bounded() -> None:
    response, _ = await request("POST", "/many", json={"values": ["x"] * 500})
    body = assert_problem(response, 422, "validation_failed")
    assert len(body["errors"]) == handlers.MAX_LISTED_ERRORS
    assert len(response.content) < 5000


async def test_messages_are_truncated() -> None:
    class Fake:
        def errors(self) -> list[dict[str, Any]]:
            return [
                {"loc": ("body", "x", object()), "msg": "m" * 1000, "type": "t", "input": "secret"}
            ]

    (cleaned,) = handlers._clean_errors(Fake())  # type: ignore[arg-type]
    assert cleaned == {"loc": ["body", "x"], "msg": "m" * 200, "type": "t"}


async def test_request_id_comes_from_state() -> None:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    handlers.include(app)

    @app.get("/fail")
    async def fail(request: Request) -> None:
        raise JsonTooDeep

    async with client(app) as http:
        response = await http.get("/fail")
    assert response.json()["request_id"] is None  # no request id middleware in front


async def test_unmapped_server_error_is_not_reported_as_a_client_error() -> None:
    response, codes = await request("GET", "/http/503")
    assert_problem(response, 500, "internal_error")
    assert codes == ["internal_error"]


async def test_unmapped_client_error_is_a_bad_request() -> None:
    response, codes = await request("GET", "/http/418")
    assert_problem(response, 400, "invalid_request")
    assert codes == ["invalid_request"]
