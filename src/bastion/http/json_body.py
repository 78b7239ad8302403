"""A request's JSON body, read and parsed once: the helper shared by the routes served below
FastAPI (the identity API's direct routes, the authorization API's check and explain).

- :func:`read_body`: the body as Starlette's ``Request.body()`` reads it (and keeps it);
- :func:`loads_body`: ``json.loads`` of that body (the same value or the same
  ``JSONDecodeError``), taking the value the JSON middleware already parsed this very body to
  (:func:`~bastion.http.middleware.content_type.parsed_json`) instead of a second parse;
- :func:`json_invalid`: the ``json_invalid`` validation error FastAPI raises for a body that
  does not parse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect, Request

from bastion.http.middleware.content_type import NOT_PARSED, parsed_json

__all__ = ["json_invalid", "loads", "loads_body", "read_body"]


async def read_body(request: Request) -> bytes:
    """``await request.body()``, read as Starlette reads it (every message through the
    request's ``receive``; a disconnect is ``ClientDisconnect``; other messages are skipped)
    without its stream generator, and kept on the request as ``body()`` keeps it."""
    if hasattr(request, "_body"):
        return request._body  # noqa: SLF001 - Starlette's own cache of the body
    if request._stream_consumed:  # noqa: SLF001
        raise RuntimeError("Stream consumed")
    receive = request.receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif kind == "http.disconnect":
            request._is_disconnected = True  # noqa: SLF001
            raise ClientDisconnect
    request._stream_consumed = True  # noqa: SLF001
    body = request._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # noqa: SLF001
    return body


#: The scanner of ``json.loads``'s own decoder (a default ``JSONDecoder``), called directly.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads(raw: bytes) -> Any:
    """``json.loads(raw)``: the same value, or the same error. A body that is a UTF-8 object
    with nothing around it (every check a client sends) goes straight to the scanner
    ``json.loads`` ends up in (it would detect UTF-8 for a body starting with ``{`` and a
    non-NUL byte, decode it with ``surrogatepass`` and find no whitespace to skip); anything
    else, and anything the scanner refuses, takes ``json.loads`` itself."""
    if raw[:1] == b"{" and raw[-1:] == b"}" and raw[1:2] != b"\x00":
        try:
            text = raw.decode("utf-8", "surrogatepass")
            data, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            pass  # json.loads raises its own error below
        else:
            if end == len(text):
                return data
    return json.loads(raw)


def loads_body(scope: MutableMapping[str, Any] | None, raw: bytes) -> Any:
    """``json.loads(raw)`` for the body ``raw`` of the request ``scope``: the value the JSON
    middleware parsed this very body to (handed out once), else :func:`loads` (the same value
    or the same ``JSONDecodeError``)."""
    if scope is not None:
        value = parsed_json(scope, raw)
        if value is not NOT_PARSED:
            return value
    return loads(raw)


def json_invalid(exc: json.JSONDecodeError) -> RequestValidationError:
    """The validation error FastAPI raises for a JSON body that does not parse."""
    invalid = {
        "type": "json_invalid",
        "loc": ("body", exc.pos),
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": exc.msg},
    }
    return RequestValidationError([invalid], body=exc.doc)
