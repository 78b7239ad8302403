"""FastAPI exception handlers: every error a route or the router raises becomes problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from bastion.errors import BastionError
from bastion.http.errors import (
    Forbidden,
    HttpError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from bastion.http.problems import PROBLEM_CONTENT_TYPE, problem_for

_BY_STATUS: dict[int, type[HttpError]] = {
    400: InvalidRequest,
    401: NotAuthenticated,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationFailed,
}

#: At most this many validation errors are listed: a huge invalid body must not yield a huge
#: answer.
MAX_LISTED_ERRORS = 20


def _response(
    request: Request, error: BastionError, extra: dict[str, Any] | None = None
) -> Response:
    status, body = problem_for(request.scope, error, extra)
    headers = getattr(error, "headers", None)
    return Response(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


async def _bastion_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, BastionError):  # registered for BastionError only
        raise TypeError(type(exc).__name__)
    # An error may carry extension members for its problem body (e.g. a policy's reasons).
    extra = getattr(exc, "extra", None)
    return _response(request, exc, extra if isinstance(extra, dict) else None)


async def _http_exception(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # registered for it only
        raise TypeError(type(exc).__name__)
    fallback = InternalError if exc.status_code >= 500 else InvalidRequest
    error_cls = _BY_STATUS.get(exc.status_code, fallback)
    # The router's own messages ("Not Found", "Method Not Allowed") are safe; anything else a
    # library put in `detail` is replaced by the class title so no internal text reaches clients.
    error = error_cls()
    response = _response(request, error)
    if exc.headers:
        for key, value in exc.headers.items():
            if key.lower() == "allow":
                response.headers["Allow"] = value
    return response


def _clean_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Validation errors without the offending input: it may be a password or a huge string."""
    cleaned = []
    for err in exc.errors()[:MAX_LISTED_ERRORS]:
        loc = [part for part in err.get("loc", ()) if isinstance(part, str | int)]
        cleaned.append({"loc": loc, "msg": str(err.get("msg", ""))[:200], "type": err.get("type")})
    return cleaned


async def _validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # registered for it only
        raise TypeError(type(exc).__name__)
    errors = _clean_errors(exc)
    detail = "The request does not match the schema: see `errors`."
    return _response(request, ValidationFailed(detail), {"errors": errors})


def include(app: FastAPI) -> None:
    app.add_exception_handler(BastionError, _bastion_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
