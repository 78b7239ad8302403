"""A direct route's answer skips the response validation only for an exact instance of a
response model that validation hands back unchanged; the bytes sent are the FastAPI route's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, model_validator

from bastion.identity._direct import DirectRoute, _unvalidated_model, api_route
from bastion.identity.accounts.routes import ProfileOut


class Inner(BaseModel):
    label: str
    weight: float | None = None


class Out(BaseModel):
    id: str
    name: str
    note: str | None = None
    at: datetime
    tags: list[str] = []
    inner: Inner | None = None
    flag: bool = False


class Sub(Out):
    secret: str = "never sent"


class Revalidating(Out):
    model_config = ConfigDict(revalidate_instances="always")


class Checked(Out):
    @model_validator(mode="before")
    @classmethod
    def seen(cls, value: Any) -> Any:
        # Sees the handler's instance too: the validation must not be skipped for it.
        if isinstance(value, BaseModel):
            return value.model_copy(update={"name": "checked"})
        return value


AT = datetime(2026, 11, 29, 5, 5, 25, 123456, tzinfo=UTC)
CONTENTS: list[Any] = [
    Out(id="1", name="Zoë 🙂 \u202e名前", at=AT),
    Out(id="2", name='quote " back \\ slash \n nl \x00', note=None, at=AT, tags=["a", "ü"]),
    Out(id="3", name="x", note="\u2115ote", at=AT.astimezone(timezone(timedelta(hours=-8)))),
    Out(id="4", name="", at=datetime(1, 1, 1, tzinfo=UTC), inner=Inner(label="i")),
    Out(id="5", name="n", at=AT, inner=Inner(label="i", weight=1e300), flag=True),
    Sub(id="6", name="sub", at=AT, secret="s"),  # a subclass: validated as before
    {"id": "7", "name": "dict", "at": AT.isoformat(), "note": None},  # validated as before
]


def _app(model: type[BaseModel], *, exclude_none: bool, direct: bool) -> FastAPI:
    router = APIRouter()

    @router.get("/thing", response_model=model, response_model_exclude_none=exclude_none)
    async def thing(n: int) -> Any:
        return _content(model, n)

    async def handler(request: Request, response: Response, _: None) -> Any:
        response.headers["x-extra"] = "1"
        return _content(model, int(request.query_params["n"]))

    app = FastAPI()
    if direct:
        app.router.routes.append(DirectRoute(api_route(router, "/thing", "GET"), handler))
    app.include_router(router)
    if not direct:
        # The header the direct handler's sub-response adds, added here after the route.

        @app.middleware("http")
        async def extra(request: Request, call_next: Any) -> Response:
            answer: Response = await call_next(request)
            answer.headers["x-extra"] = "1"
            return answer

    return app


def _content(model: type[BaseModel], n: int) -> Any:
    content = CONTENTS[n]
    if isinstance(content, BaseModel) and type(content) is Out and model is not Out:
        return model.model_validate(content.model_dump())
    return content


async def _get(app: FastAPI, n: int) -> tuple[int, bytes, list[tuple[str, str]]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/thing", params={"n": n})
    return answer.status_code, answer.content, sorted(answer.headers.multi_items())


def test_which_models_skip_the_validation() -> None:
    router = APIRouter()
    for model in (Out, Revalidating, Checked, ProfileOut):

        @router.get(f"/{model.__name__}", response_model=model)
        async def endpoint() -> Any:  # pragma: no cover - never called
            return None

    fields = {route.path: route.response_field for route in router.routes}  # type: ignore[attr-defined]
    assert _unvalidated_model(fields["/Out"]) is Out
    assert _unvalidated_model(fields["/ProfileOut"]) is ProfileOut
    assert _unvalidated_model(fields["/Revalidating"]) is None
    assert _unvalidated_model(fields["/Checked"]) is None


@pytest.mark.parametrize("model", [Out, Revalidating, Checked])
@pytest.mark.parametrize("exclude_none", [True, False])
@pytest.mark.parametrize("n", range(len(CONTENTS)))
async def test_direct_bytes_are_the_fastapi_routes(
    model: type[BaseModel], exclude_none: bool, n: int
) -> None:
    direct = await _get(_app(model, exclude_none=exclude_none, direct=True), n)
    fastapi = await _get(_app(model, exclude_none=exclude_none, direct=False), n)
    assert direct == fastapi
    assert direct[0] == 200
    assert b"never sent" not in direct[1]
