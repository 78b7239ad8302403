"""Check and explain, served as plain Starlette routes: the API's hot path.

A check through a FastAPI route paid for FastAPI's per-request machinery (dependency
resolution with its cache keys and parameter extraction, the endpoint context, the body
sniffing) more than for the decision itself. These routes do by hand what that route did,
in the same order and with the same answers:

1. the caller (the API's one access dependency: 401/403 before anything about the body);
2. the JSON body as :class:`~bastion.authz.api.schemas.CheckBody`, with the errors FastAPI
   gives for a body parameter (:func:`parse_body`);
3. the store id path parameter (at most 64 characters, as FastAPI validated it, then a ULID);
4. the decision (:meth:`AuthzService.check` / :meth:`~AuthzService.explain`: deny by default,
   every denial in the decision log), answered 200 with ``application/json``.

Every :class:`BastionError` and ``RequestValidationError`` is OpenFGA's error body
(:func:`bastion.authz.api._errors.render`), as on the API's other routes; anything else
propagates to the HTTP core (a 500). Like the FastAPI route (whose endpoint returned a
``Response``), the answer does not carry headers the dependency wrote on its sub-response.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from bastion.authz.api import _convert as convert
from bastion.authz.api._errors import OpenFgaError, render
from bastion.authz.api.schemas import BatchCheckItemIn, CheckBody
from bastion.authz.service import CheckRequest, Consistency, RequestInfo
from bastion.authz.store import is_ulid
from bastion.errors import BastionError
from bastion.http.json_body import json_invalid, loads_body, read_body

__all__ = ["DecisionRoute", "check_request", "json_bytes", "parse_body", "store_id_of"]

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)

#: The store id path parameter's bound (OpenFGA's ids are 26-character ULIDs).
MAX_STORE_ID_CHARS = 64
_STORE_ID = TypeAdapter(Annotated[str, Field(min_length=1, max_length=MAX_STORE_ID_CHARS)])

#: The caller of a decision request (``ApiAccess.decision_caller(Permission.QUERY)``).
Asker = Callable[[Request], Awaitable[RequestInfo]]


class Decide(Protocol[_T_co]):
    """:meth:`AuthzService.check` or :meth:`AuthzService.explain`."""

    def __call__(
        self,
        store_id: str,
        request: CheckRequest,
        /,
        *,
        model_id: str | None,
        consistency: Consistency,
        info: RequestInfo,
    ) -> Awaitable[_T_co]: ...


def json_bytes(content: Any) -> bytes:
    """``content`` as Starlette's ``JSONResponse`` renders it."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def parse_body(raw: bytes, model: type[_M], scope: MutableMapping[str, Any] | None = None) -> _M:
    """The JSON body ``raw`` (of the request ``scope``) as ``model``, with the errors FastAPI
    gives for a body parameter (a missing body, invalid JSON, a failed validation:
    ``RequestValidationError`` located under ``body``). The content type, encoding and shape
    limits were checked by Bastion's middleware before any route runs; the value it parsed the
    body to is taken instead of a second parse (:func:`bastion.http.json_body.loads_body`)."""
    if not raw:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        data = loads_body(scope, raw)
    except json.JSONDecodeError as exc:
        raise json_invalid(exc) from exc
    try:
        # ``model_validate`` without its keyword handling (every option at its default).
        return model.__pydantic_validator__.validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors, body=data) from exc


def store_id_of(value: str) -> str:
    """The ``{store_id}`` path parameter, validated as FastAPI's ``Path(min_length=1,
    max_length=64)`` did, then as a ULID (OpenFGA refuses a malformed id as a validation
    error; a well-formed unknown one is 404 later)."""
    if len(value) > MAX_STORE_ID_CHARS:
        try:
            _STORE_ID.validate_python(value)
        except ValidationError as exc:
            errors = [
                {**e, "loc": ("path", "store_id", *e["loc"])} for e in exc.errors(include_url=False)
            ]
            raise RequestValidationError(errors) from exc
    if not is_ulid(value):
        raise OpenFgaError(400, "validation_error", "invalid store id")
    return value


def check_request(body: CheckBody | BatchCheckItemIn, correlation_id: str = "") -> CheckRequest:
    key = body.tuple_key
    contextual = body.contextual_tuples
    return CheckRequest(
        key.object,
        key.relation,
        key.user,
        context=body.context,
        # Most checks carry none: no conversion then.
        contextual_tuples=convert.contextual(contextual) if contextual is not None else (),
        correlation_id=correlation_id,
    )


class _Endpoint(Generic[_T]):
    """The ASGI app behind a :class:`DecisionRoute` (see the module docstring)."""

    def __init__(self, asker: Asker, decide: Decide[_T], answer: Callable[[_T], bytes]) -> None:
        self._asker = asker
        self._decide = decide
        self._answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            # No sub-response: the FastAPI route did not merge the dependency's into its answer.
            info = await self._asker(request)
            body = parse_body(await read_body(request), CheckBody, scope)
            store_id = store_id_of(scope["path_params"]["store_id"])
            result = await self._decide(
                store_id,
                check_request(body),
                model_id=body.authorization_model_id,
                consistency=body.consistency,
                info=info,
            )
            content = self._answer(result)
        except (BastionError, RequestValidationError) as exc:
            await render(request, exc)(scope, receive, send)
            return
        headers = [
            (b"content-length", str(len(content)).encode("latin-1")),
            (b"content-type", b"application/json"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})


class DecisionRoute(Route):
    """``POST /stores/{store_id}/<name>`` answering ``answer(decide(...))`` (see the module
    docstring); any other method is answered 405 by Starlette, as FastAPI's routes are. Left
    out of the OpenAPI document like the API's other routes."""

    def __init__(
        self, name: str, asker: Asker, decide: Decide[_T], answer: Callable[[_T], bytes]
    ) -> None:
        endpoint = _Endpoint(asker, decide, answer)
        path = f"/stores/{{store_id}}/{name}"
        super().__init__(path, endpoint, methods=["POST"], name=name, include_in_schema=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            # As FastAPI's routes do: metrics and the rejection audit name the route template.
            child_scope["route"] = self
        return match, child_scope
