"""The identity API's hottest routes served below FastAPI: ``GET /v1/account``,
``POST /v1/sessions/refresh`` and ``POST /v1/sessions`` (password login).

Through a FastAPI route, these paid more for FastAPI's per-request machinery (the walk past
every earlier route, dependency resolution with its cache keys and parameter extraction, the
endpoint context) than for their own work. A :class:`DirectRoute` is a plain Starlette route
tried before every other route; it does by hand what the FastAPI route did, in the same order,
reusing that route's own body and response fields so that validation and serialization cannot
drift from it:

1. the JSON body as FastAPI reads it (:func:`json_body`: the content type decides whether it
   is parsed, invalid JSON is a ``json_invalid`` validation error, a read failure a 400; the
   value the JSON middleware parsed the same body to is taken instead of a second parse),
   validated by the route's body field;
2. the endpoint's own work, given a sub-response as FastAPI's dependencies get one;
3. the answer validated and serialized by the route's response field (``exclude_none`` as
   declared; or :class:`Serialized`, the bytes the handler vouches the field would make, tested
   against it), sent as FastAPI sends it: ``content-length``, ``content-type`` then the headers
   the sub-response collected (per-user ``RateLimit`` fields, session cookies).

Errors propagate to the app's exception handlers (problem+json), as from the FastAPI route. The
FastAPI route stays registered for every other method and for the OpenAPI document.

Served by Bastion's app, a direct route at the head of the router is answered by
:class:`~bastion.http.middleware.direct_routes.DirectRoutesMiddleware` (behind every security
layer, before FastAPI's exception layer, exit stack and router): it calls the endpoint's
:meth:`_Endpoint.answer` and sends what it prepared; the router still serves the route wherever
that layer does not (a root path, FastAPI telemetry on).
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi._body_limit import get_body_limit_error
from fastapi._compat import ModelField, Undefined, get_missing_field_error
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from bastion.http.json_body import json_invalid, loads_body
from bastion.http.json_body import read_body as _read_body
from bastion.http.middleware.direct_routes import Prepared

__all__ = ["DirectRoute", "Serialized", "api_route", "json_body"]

#: The endpoint's work: the request, its sub-response, the validated body (None when the route
#: has none or it was absent); returns the answer's content before response validation, its
#: JSON already serialized (:class:`Serialized`), or a response of its own (sent as it is,
#: without the sub-response's headers, as FastAPI does).
Handler = Callable[[Request, Response, Any], Awaitable[Any]]


class Serialized(bytes):
    """An answer's JSON as the route's response field would serialize the content (the handler
    vouches for it: byte for byte, tested against the field): sent without validation or
    serialization."""


_JSON = "application/json"
_JSON_BYTES = _JSON.encode("latin-1")


def api_route(router: APIRouter, path: str, method: str) -> APIRoute:
    """The FastAPI route ``method path`` of ``router``."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ()):
            return route
    raise LookupError(f"{method} {path}")


def _is_json(content_type: str) -> bool:
    if content_type == _JSON:  # the common case, without the parse below
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _content_type(request: Request) -> str | None:
    """``request.headers.get("content-type")``: the first header of that (raw, lower-case)
    name, decoded as Latin-1, without building the request's ``Headers``."""
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            text: str = value.decode("latin-1")
            return text
    return None


async def json_body(request: Request) -> Any:
    """The body as FastAPI reads it for a JSON body parameter: ``Undefined`` when empty, the
    parsed JSON for a JSON content type, the raw bytes otherwise (the validation refuses them;
    FastAPI's strict content type: no content type is not JSON). Raises
    ``RequestValidationError`` for invalid JSON and ``HTTPException(400)`` when the body
    cannot be read."""
    try:
        raw = await _read_body(request)
        content_type = _content_type(request)
        # The JSON middleware parsed this very body already: its value, not a second parse.
        value = (
            loads_body(request.scope, raw)
            if raw and content_type and _is_json(content_type)
            else raw
        )
    except json.JSONDecodeError as exc:
        raise json_invalid(exc) from exc
    except HTTPException:
        raise
    except Exception as exc:
        if MAX_BODY_SIZE_SCOPE_KEY in request.scope and (error := get_body_limit_error(exc)):
            raise error from exc
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
    return value if raw else Undefined


class _SubResponse(Response):
    """What FastAPI hands dependencies and endpoints as ``response``: FastAPI builds a
    ``Response()`` and deletes its ``content-length``, which leaves no header, an empty body
    and no status; this one is built that way directly."""

    def __init__(self) -> None:
        self.status_code = None  # type: ignore[assignment]
        self.background = None
        self.body = b""
        self.raw_headers = []


def _sub_response() -> Response:
    """What FastAPI hands dependencies and endpoints as ``response``."""
    return _SubResponse()


def _unvalidated_model(field: ModelField) -> type[BaseModel] | None:
    """The response model class whose exact instances the response validation hands back
    unchanged, or None: a pydantic model declared as the whole response, which does not
    revalidate instances (``revalidate_instances`` "never", pydantic's default) and declares no
    model validator (a "before"/"wrap" one would see the instance). For such an instance,
    ``validate`` returns the instance itself, so the endpoint skips it."""
    model = field.field_info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    if model.model_config.get("revalidate_instances", "never") != "never":
        return None
    if model.__pydantic_decorators__.model_validators:
        return None
    return model


class _Endpoint:
    """The ASGI app behind a :class:`DirectRoute` (see the module docstring)."""

    def __init__(self, route: APIRoute, handler: Handler) -> None:
        self._handler = handler
        self._body: ModelField | None = route.body_field
        response_field = route.response_field
        if response_field is None:
            raise ValueError(f"{route.path} declares no response model")
        self._response: ModelField = response_field
        self._model = _unvalidated_model(response_field)
        self._exclude_none = route.response_model_exclude_none
        self._status = route.status_code or 200

    async def _validated_body(self, request: Request) -> Any:
        if self._body is None:
            return None
        received = await json_body(request)
        if received is Undefined:
            if self._body.field_info.is_required():
                raise RequestValidationError([get_missing_field_error(("body",))], body=None)
            # The parameter's default (FastAPI does not validate a default).
            return self._body.get_default()
        value, errors = self._body.validate(received, {}, loc=("body",))
        if errors:
            raise RequestValidationError(errors, body=received)
        return value

    async def answer(self, request: Request) -> Prepared | Response:
        """The answer to ``request``, not sent (see :mod:`bastion.http.middleware.direct_routes`):
        a response of the handler's own, or the status, headers and body to send."""
        body = await self._validated_body(request)
        sub = _sub_response()
        content = await self._handler(request, sub, body)
        if isinstance(content, Response):
            # As FastAPI does: a response of the handler's own is sent as it is.
            return content
        if type(content) is Serialized:
            data: bytes = content
        else:
            if type(content) is self._model:
                # What the validation answers for it: this very instance (_unvalidated_model).
                value = content
            else:
                value, errors = self._response.validate(content, {}, loc=("response",))
                if errors:
                    raise RequestValidationError(errors)
            data = self._response.serialize_json(value, exclude_none=self._exclude_none)
        status = sub.status_code or self._status
        if status < 200 or status in (204, 304):  # pragma: no cover
            response = Response(content=data, media_type=_JSON, status_code=status)
            response.headers.raw.extend(sub.headers.raw)
            return response
        # What Response(content=data, media_type=_JSON) sends, without building one: its
        # content-length and content-type, then the sub-response's headers.
        headers = [
            (b"content-length", str(len(data)).encode("latin-1")),
            (b"content-type", _JSON_BYTES),
            *sub.raw_headers,  # what ``sub.headers.raw`` lists (its list, not a copy of it)
        ]
        return status, headers, data

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Routed by the router (the direct routes middleware absent or passed by)."""
        answer = await self.answer(Request(scope, receive, send))
        if not isinstance(answer, tuple):
            await answer(scope, receive, send)
            return
        status, headers, data = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


class DirectRoute(Route):
    """``route``'s method and path, answered by ``handler`` (see the module docstring). Matches
    that method only: any other goes on to the FastAPI routes (405 or another route), as
    before. Left out of the OpenAPI document: the FastAPI route documents it."""

    def __init__(self, route: APIRoute, handler: Handler) -> None:
        methods = sorted(route.methods or ())
        if len(methods) != 1:
            raise ValueError(f"{route.path}: one method expected, got {methods}")
        self._method = methods[0]
        super().__init__(
            route.path,
            _Endpoint(route, handler),
            methods=[self._method],
            name=route.name,
            include_in_schema=False,
        )
        #: A path without parameters: what it matches contains it (Starlette matches the path
        #: less its root path), so a path that does not cannot match.
        self._literal = not self.param_convertors
        #: Its method when :class:`~bastion.http.middleware.direct_routes.DirectRoutesMiddleware`
        #: may answer it before the router (a path without parameters), else None.
        self.direct_method: str | None = self._method if self._literal else None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != self._method:
            return Match.NONE, {}
        if self._literal and self.path not in scope["path"]:
            return Match.NONE, {}  # what Starlette's match answers, without its regex
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            # As FastAPI's routes do: metrics and the rejection audit name the route template.
            child_scope["route"] = self
        return match, child_scope
