"""OpenFGA's error answers: ``{"code": "...", "message": "..."}`` with OpenFGA's status codes.

Every error raised while handling an OpenFGA route (authentication, body validation, the
store, the engine) is rendered here, inside the route, so OpenFGA clients get the body their
SDK parses instead of Bastion's problem+json. The codes are OpenFGA's enum names (the SDKs
deserialize them into enums, so no Bastion-only code may appear); messages never carry
internals. A server-side error not meant for clients is a plain ``internal_error``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import Response

from bastion.authz.errors import AuthzError
from bastion.errors import BastionError
from bastion.http.problems import request_id_of
from bastion.logging import get_logger

__all__ = ["OpenFgaError", "OpenFgaRoute", "openfga_response"]

_log = get_logger("bastion.authz.api")

#: At most this many validation errors are described (bounded answers to huge bodies).
MAX_LISTED_ERRORS = 5

#: Bastion's own errors met on these routes, mapped to OpenFGA's code for the same status.
_CODES_BY_STATUS = {
    400: "validation_error",
    401: "unauthenticated",
    403: "forbidden",
    404: "undefined_endpoint",
    409: "validation_error",
    422: "validation_error",
    429: "rate_limit_exceeded",
    503: "internal_error",
}


class OpenFgaError(BastionError):
    """An error answered with an explicit OpenFGA code (401, 403, 400 validation...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.openfga_status = status
        self.openfga_code_name = code


def openfga_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps({"code": code, "message": message}, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _describe(errors: Sequence[Any]) -> str:
    parts = []
    for error in list(errors)[:MAX_LISTED_ERRORS]:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def render(request: Request, exc: Exception) -> Response:
    """The OpenFGA answer for ``exc`` (re-raises what is not an error of ours)."""
    state = request.scope.setdefault("state", {})
    headers = getattr(exc, "headers", None)
    if isinstance(exc, OpenFgaError):
        code, status, message = exc.openfga_code_name, exc.openfga_status, exc.detail
    elif isinstance(exc, RequestValidationError):
        code, status, message = "validation_error", 400, _describe(exc.errors())
    elif isinstance(exc, AuthzError):
        code, status, message = exc.code, exc.status, exc.detail
    elif isinstance(exc, BastionError):
        status = exc.status
        code = _CODES_BY_STATUS.get(status, "internal_error")
        message = exc.detail if status < 500 or exc.expose else "Internal Server Error"
    else:
        raise exc
    if status >= 500 and not (isinstance(exc, BastionError) and exc.expose):
        _log.error(
            "authz_api_error", error=type(exc).__name__, request_id=request_id_of(request.scope)
        )
        code, message = "internal_error", "Internal Server Error"
    state["problem_code"] = code
    return openfga_response(status, code, message, headers if isinstance(headers, dict) else None)


class OpenFgaRoute(APIRoute):
    """A route whose errors, body validation and dependencies included, answer OpenFGA's body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def openfga_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (BastionError, RequestValidationError) as exc:
                return render(request, exc)

        return openfga_handler
