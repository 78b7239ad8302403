"""RFC 9457 problem details: the one error format for every answer Bastion gives.

Body: ``{"type", "title", "status", "detail", "code", "request_id"}`` plus optional extension
members. ``type`` is ``urn:bastion:problem:<code>`` and ``code`` is stable: clients branch on it,
the audit log records it. The renderer never includes exception text, SQL, paths or stack traces;
only the explicit development ``debug`` mode adds them (see :mod:`bastion.http.middleware.errors`).

Middleware that answers by itself calls :func:`send_problem`; route handlers raise a
:class:`~bastion.errors.BastionError` and the exception handlers in :mod:`bastion.http.handlers`
render it. Either way the code is stored in ``scope["state"]["problem_code"]`` for the audit
middleware.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.types import Scope, Send

from bastion.errors import BastionError
from bastion.http.errors import InternalError
from bastion.logging import get_logger

_log = get_logger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
_CT_HEADER = (b"content-type", PROBLEM_CONTENT_TYPE.encode("latin-1"))


def problem_type(code: str) -> str:
    return f"urn:bastion:problem:{code}"


def request_id_of(scope: Scope) -> str | None:
    state = scope.get("state")
    return state.get("request_id") if state else None


def _remember_code(scope: Scope, code: str) -> None:
    state = scope.setdefault("state", {})
    state["problem_code"] = code


def problem_dict(
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None,
    request_id: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
        "request_id": request_id,
    }
    if extra:
        for key, value in extra.items():
            body.setdefault(key, value)
    return body


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def problem_for(
    scope: Scope,
    error: BastionError,
    extra: Mapping[str, Any] | None = None,
) -> tuple[int, bytes]:
    """Status and body for ``error``; records its code on the scope.

    A server-side error not meant for clients (``expose`` false) is answered as a plain
    ``internal_error``; its real class and code go to the server log only.
    """
    if error.status >= 500 and not error.expose and error.code != InternalError.code:
        _log.error(
            "internal_error_masked",
            error=type(error).__name__,
            code=error.code,
            detail=error.detail,
            request_id=request_id_of(scope),
        )
        error, extra = InternalError(), None
    _remember_code(scope, error.code)
    body = problem_dict(
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        request_id=request_id_of(scope),
        extra=extra,
    )
    return error.status, encode(body)


async def send_problem(
    scope: Scope,
    send: Send,
    error: BastionError,
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Answer an HTTP request with ``error`` as problem+json (from pure ASGI middleware)."""
    status, body = problem_for(scope, error, extra)
    raw_headers = [_CT_HEADER, (b"content-length", str(len(body)).encode("latin-1")), *headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
