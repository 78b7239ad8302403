"""Routes answered before FastAPI's exception layer, exit stack and router: the identity API's
direct routes (``bastion.identity._direct``), served with the same answers for a fraction of
the per-request machinery.

:class:`DirectRoutesMiddleware` is the innermost of Bastion's middleware, so a request reaches
it only after *every* security layer (HTTP core, CORS, rate limits, body limit, JSON content
check). It takes the place of the ``ExceptionMiddleware`` FastAPI puts right inside (it does
that layer's work itself, with that layer's own handler tables), and for each request:

* a route the router would try first, of this exact method and path (no root path, no FastAPI
  telemetry in the scope), is answered here: the scope gets what the exception layer and the
  router would have put in it (``starlette.exception_handlers``, ``router``, ``endpoint``,
  ``path_params``, ``route``), the endpoint prepares its answer, and an exception is turned
  into the app's answer for it by the same handler lookup as Starlette's
  (``wrap_app_handling_exceptions``): by status for an ``HTTPException``, then along the
  exception's MRO; none found, it propagates (the HTTP core answers 500);
* every other request goes through the exception layer's work and on to FastAPI's stack
  unchanged (no extra hop: this layer replaces the one it wraps).

Only routes at the head of the router's list are taken (the ``direct_method`` of each is set
and no route before it matches its method and path), read when the stack is built (the first
request); a route no longer at its place in the list (routes inserted or removed before it)
is left to the router again. Anything but FastAPI's shape inside (exception layer, exit stack,
a router without middleware or form limits) makes this layer a plain pass-through.

FastAPI's exit stack (``fastapi_middleware_astack``) is not opened for a direct route: only its
form and file parsing uses it, and a direct route parses neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette._exception_handler import (
    ExceptionHandlers,
    StatusHandlers,
    wrap_app_handling_exceptions,
)
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.http.middleware._next import next_app

__all__ = ["DirectEndpoint", "DirectRoutesMiddleware", "Prepared"]

#: An answer ready to send: status, raw headers, body.
Prepared = tuple[int, list[tuple[bytes, bytes]], bytes]


class DirectEndpoint(Protocol):
    """The endpoint of a route with a ``direct_method``."""

    async def answer(self, request: Request) -> Prepared | Response:
        """The answer to ``request``, not sent: a :data:`Prepared` one or a response.
        Raises what the route's endpoint raises (the app's exception handlers answer it)."""
        ...  # pragma: no cover - a protocol


_HANDLED_AFTER_START = "Caught handled exception, but response already started."


class DirectRoutesMiddleware:
    """Serves the router's leading direct routes (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._next = next_app(app)
        self._table: dict[str, tuple[str, int, BaseRoute]] = {}
        self._routes: list[BaseRoute] = []
        self._absorbed = False
        if not isinstance(app, ExceptionMiddleware) or type(app) is not ExceptionMiddleware:
            return
        stack = app.app
        if type(stack) is not AsyncExitStackMiddleware:
            return
        router = stack.app
        if (
            not isinstance(router, Router)
            or router.middleware_stack != router.app
            or getattr(router, "form_limits", None)
        ):
            return
        self._absorbed = True
        self._router = router
        self._routes = router.routes
        # What ExceptionMiddleware puts in the scope: its own tables (the same dicts).
        self._handlers: tuple[ExceptionHandlers, StatusHandlers] = (
            app._exception_handlers,  # noqa: SLF001 - the layer this one replaces
            app._status_handlers,  # noqa: SLF001
        )
        self._inner = next_app(stack)
        self._table = _leading_direct_routes(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._absorbed or scope["type"] != "http":
            await self._next(scope, receive, send)  # the exception layer itself
            return
        entry = self._table.get(scope["path"])
        if (
            entry is not None
            and scope["method"] == entry[0]
            and not scope.get("root_path")
            and "fastapi.telemetry" not in scope
            and len(self._routes) > entry[1]
            and self._routes[entry[1]] is entry[2]
        ):
            await self._serve(entry[2], scope, receive, send)
            return
        # ExceptionMiddleware.__call__ for an HTTP request.
        scope["starlette.exception_handlers"] = self._handlers
        conn = Request(scope, receive, send)
        await wrap_app_handling_exceptions(self._inner, conn)(scope, receive, send)

    async def _serve(self, route: Any, scope: Scope, receive: Receive, send: Send) -> None:
        # What the exception layer and the router put in the scope (Route.matches' child scope
        # for a path without parameters, and the route, as FastAPI's routes add it).
        scope["starlette.exception_handlers"] = self._handlers
        if "router" not in scope:
            scope["router"] = self._router
        endpoint: DirectEndpoint = route.endpoint
        params = scope.get("path_params")
        scope["endpoint"] = endpoint
        scope["path_params"] = dict(params) if params else {}
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            answer = await endpoint.answer(request)
        except Exception as exc:  # noqa: BLE001 - answered by the app's handler, or raised again
            await self._recover(request, exc, send)
            return
        if not isinstance(answer, tuple):
            await self._send_response(request, answer, send)
            return
        status, headers, body = answer
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        except Exception as exc:
            if self._handler_for(exc) is not None:
                raise RuntimeError(_HANDLED_AFTER_START) from exc
            raise

    def _handler_for(self, exc: Exception) -> Any:
        """Starlette's choice of handler for ``exc`` (``wrap_app_handling_exceptions``)."""
        exception_handlers, status_handlers = self._handlers
        handler = None
        if isinstance(exc, HTTPException):
            handler = status_handlers.get(exc.status_code)
        if handler is None:
            for cls in type(exc).__mro__:
                if cls in exception_handlers:
                    return exception_handlers[cls]
        return handler

    async def _recover(self, request: Request, exc: Exception, send: Send) -> None:
        """The answer of the app's handler for ``exc``, raised before anything was sent."""
        handler = self._handler_for(exc)
        if handler is None:
            raise exc
        if is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if response is not None:
            await response(request.scope, request.receive, send)
        # Reused exception instances accumulate tracebacks across requests (as Starlette).
        exc.__traceback__ = None

    async def _send_response(self, request: Request, response: Response, send: Send) -> None:
        """A response of the endpoint's own, sent with Starlette's bookkeeping of whether the
        answer started (an exception after that is not answered again)."""
        started = False

        async def sender(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await response(request.scope, request.receive, sender)
        except Exception as exc:
            if started:
                if self._handler_for(exc) is not None:
                    raise RuntimeError(_HANDLED_AFTER_START) from exc
                raise
            await self._recover(request, exc, sender)


def _leading_direct_routes(
    routes: Sequence[BaseRoute],
) -> dict[str, tuple[str, int, BaseRoute]]:
    """``path -> (method, index, route)`` for the routes at the head of ``routes`` that have a
    ``direct_method`` and that no route before them matches (method and path)."""
    table: dict[str, tuple[str, int, BaseRoute]] = {}
    for index, route in enumerate(routes):
        method = getattr(route, "direct_method", None)
        if not isinstance(method, str):
            break
        path: str = getattr(route, "path", "")
        probe = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        if path in table or any(r.matches(probe)[0] is not Match.NONE for r in routes[:index]):
            continue
        table[path] = (method, index, route)
    return table
