"""A direct route answered by :class:`DirectRoutesMiddleware` (before FastAPI's exception layer,
exit stack and router) gets the answer, the scope and the exceptions it gets through them.

Each case runs on two apps built alike: one with the middleware, one without (its router then
serves the same direct route), and compares what comes out.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Match, Mount, Route
from starlette.types import Message, Receive, Scope, Send

from bastion.app import create_app
from bastion.config.settings import Settings
from bastion.http.errors import Forbidden
from bastion.http.handlers import include as include_handlers
from bastion.http.middleware.direct_routes import DirectRoutesMiddleware
from bastion.identity._direct import DirectRoute, api_route


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: str


class Out(BaseModel):
    mode: str
    note: str | None = None


class Teapot(Exception):
    pass


class Unhandled(Exception):
    pass


#: What each handler call saw in the scope, for the scope comparison.
SEEN: list[dict[str, Any]] = []
SCOPE_KEYS = ("endpoint", "route", "router", "path_params", "starlette.exception_handlers")


class CountingRoute(DirectRoute):
    """Counts the router's match attempts: a request the middleware answers makes none."""

    tried = 0

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        CountingRoute.tried += 1
        return super().matches(scope)


async def _handler(request: Request, response: Response, body: In) -> Any:
    SEEN.append({key: request.scope.get(key) for key in SCOPE_KEYS})
    mode = body.mode
    if mode == "bastion":
        raise Forbidden
    if mode == "status":
        raise HTTPException(status_code=418, detail="short and stout")
    if mode == "http":
        raise HTTPException(status_code=404, headers={"allow": "POST"})
    if mode == "sync":
        raise Teapot
    if mode == "crash":
        raise Unhandled("boom")
    if mode == "own":
        return JSONResponse({"own": True}, status_code=202, headers={"x-own": "1"})
    response.headers["x-mode"] = mode
    response.set_cookie("c", "v", httponly=True)
    return Out(mode=mode)


def _teapot(_: Request, __: Exception) -> Response:
    return Response("teapot", status_code=418, headers={"x-sync": "1"})


async def _status_418(_: Request, __: Exception) -> Response:
    return Response("by status", status_code=418)


def _app(*, direct: bool) -> FastAPI:
    router = APIRouter()

    @router.post("/thing", response_model=Out, response_model_exclude_none=True)
    async def thing(body: In) -> Out:  # pragma: no cover - the direct route answers
        return Out(mode=body.mode)

    @router.post("/other/{item}")
    async def other(item: str) -> dict[str, str]:
        return {"item": item}

    middleware = [Middleware(DirectRoutesMiddleware)] if direct else []
    app = FastAPI(middleware=middleware)
    include_handlers(app)
    app.add_exception_handler(Teapot, _teapot)
    app.add_exception_handler(418, _status_418)
    app.include_router(router)
    app.router.routes.insert(0, CountingRoute(api_route(router, "/thing", "POST"), _handler))
    return app


async def _post(app: FastAPI, body: Any, path: str = "/thing") -> tuple[int, bytes, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post(path, json=body)
    return answer.status_code, answer.content, answer.headers.multi_items()


async def _both(body: Any, path: str = "/thing") -> tuple[int, bytes, Any]:
    SEEN.clear()
    CountingRoute.tried = 0
    direct = await _post(_app(direct=True), body, path)
    tried = CountingRoute.tried
    routed = await _post(_app(direct=False), body, path)
    assert direct == routed
    if path == "/thing":
        assert tried == 0  # answered by the middleware, not found by the router
        assert CountingRoute.tried > 0
    if len(SEEN) == 2:
        first, second = SEEN
        assert first["path_params"] == second["path_params"] == {}
        assert type(first["route"]) is CountingRoute
        assert type(first["router"]) is type(second["router"])
        handlers, expected = (seen["starlette.exception_handlers"] for seen in SEEN)
        assert [list(table) for table in handlers] == [list(table) for table in expected]
    return direct


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"mode": "plain"}, 200),
        ({"mode": "bastion"}, 403),
        ({"mode": "status"}, 418),
        ({"mode": "http"}, 404),
        ({"mode": "sync"}, 418),
        ({"mode": "own"}, 202),
        ({"mode": "plain", "extra": 1}, 422),
        ({"mode": 7}, 422),
        ([1, 2], 422),
        (None, 422),
    ],
)
async def test_answers_are_the_routers(body: Any, status: int) -> None:
    answer = await _both(body)
    assert answer[0] == status


async def test_other_routes_and_methods_go_to_the_router() -> None:
    assert (await _both({}, "/other/42"))[0] == 200
    assert (await _both({}, "/nowhere"))[0] == 404
    transport = httpx.ASGITransport(app=_app(direct=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/thing")
    assert answer.status_code == 405


async def test_an_unhandled_exception_propagates_the_same() -> None:
    for direct in (True, False):
        with pytest.raises(Unhandled):
            await _post(_app(direct=direct), {"mode": "crash"})


async def _call(app: FastAPI, send: Send, root_path: str = "") -> None:
    body = b'{"mode": "plain"}'
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{root_path}/thing",
        "raw_path": f"{root_path}/thing".encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"17")],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    await app(scope, receive, send)


@pytest.mark.parametrize(("failure", "raised"), [(OSError, RuntimeError), (Unhandled, Unhandled)])
async def test_a_send_failure_after_the_start_is_raised_as_starlette_raises_it(
    failure: type[Exception], raised: type[Exception]
) -> None:
    async def failing(message: Message) -> None:
        raise failure

    for direct in (True, False):
        app = _app(direct=direct)
        app.add_exception_handler(OSError, _teapot)
        with pytest.raises(raised):
            await _call(app, failing)


async def test_a_root_path_or_a_moved_route_is_left_to_the_router() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    app = _app(direct=True)
    CountingRoute.tried = 0
    await _call(app, send, root_path="/api")
    assert sent[0]["status"] == 200
    assert CountingRoute.tried == 1
    # A route put in front after the stack was built: the router decides again.

    async def first(_: Request) -> Response:
        return Response("first")

    app.router.routes.insert(0, Route("/thing", first, methods=["POST"]))
    sent.clear()
    await _call(app, send)
    assert sent[-1]["body"] == b"first"


def _exception_layer(app: FastAPI) -> Any:
    layer: Any = app.build_middleware_stack()
    while not isinstance(layer, ExceptionMiddleware):
        layer = layer.app
    return layer


def test_only_leading_literal_routes_are_taken() -> None:
    router = APIRouter()

    @router.post("/a", response_model=Out)
    @router.post("/b/{x}", response_model=Out)
    @router.post("/c", response_model=Out)
    @router.post("/d", response_model=Out)
    async def endpoint() -> Out:  # pragma: no cover - never called
        return Out(mode="x")

    def direct(path: str) -> DirectRoute:
        return DirectRoute(api_route(router, path, "POST"), _handler)

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:  # pragma: no cover
        pass

    app = FastAPI()
    app.router.routes[0:0] = [
        direct("/a"),
        direct("/b/{x}"),  # parameters: left to the router
        Mount("/c", inner),  # not a direct route: the run ends here
        direct("/d"),
    ]
    layer = DirectRoutesMiddleware(_exception_layer(app))
    assert set(layer._table) == {"/a"}
    shadowed = FastAPI()
    shadowed.router.routes[0:0] = [Mount("/a", inner), direct("/a")]
    layer = DirectRoutesMiddleware(_exception_layer(shadowed))
    assert layer._absorbed
    assert layer._table == {}


async def test_any_other_inner_app_is_passed_through() -> None:
    calls: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["path"])

    layer = DirectRoutesMiddleware(inner)
    await layer({"type": "http", "path": "/thing", "method": "POST"}, _never, _never)
    assert calls == ["/thing"]


async def _never(*_: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError


def test_bastions_hot_routes_are_served_directly(settings: Settings) -> None:
    app = create_app(settings)
    layer: Any = app.build_middleware_stack()
    while not isinstance(layer, DirectRoutesMiddleware):
        layer = layer.app
    assert layer._absorbed
    assert {path: method for path, (method, _, _) in layer._table.items()} == {
        "/v1/account": "GET",
        "/v1/sessions": "POST",
        "/v1/sessions/refresh": "POST",
    }
