"""Request bodies are JSON, declared as JSON, of bounded shape; checked before any route runs.

Threats: content-type confusion (a cross-site HTML form can POST ``text/plain`` or
``application/x-www-form-urlencoded`` without a CORS preflight, and a lenient parser would accept
it: CSRF), and parser exhaustion (``[[[[...`` nested thousands deep hits the recursion limit;
millions of tiny elements cost memory and validation time far beyond the body's size).

For a request that carries a body (any method), in this order:

1. ``Content-Type`` must be ``application/json`` or ``application/<name>+json``, with no charset
   other than UTF-8 (RFC 8259 section 8.1), else 415 ``unsupported_media_type``;
2. the body must be UTF-8, else 400 ``json_invalid``;
3. it may hold at most ``max_elements`` elements (400 ``json_too_many_elements``) nested at most
   ``max_depth`` deep (400 ``json_too_deep``), counted by a linear scan *before* parsing;
4. it must parse as strict JSON (no ``NaN``/``Infinity``), else 400 ``json_invalid``.

The body is then replayed to the app, and what it parsed to is handed on in the scope
(:data:`PARSED_JSON_SCOPE_KEY`: the body and its value), so that an endpoint that reads the same
body as JSON need not parse it again (:func:`parsed_json`). Its size is bounded by
:class:`~bastion.http.middleware.body_limit.BodyLimitMiddleware`, which must sit outside this one.
Requests without a body pass straight through; paths in ``exempt`` (templates, e.g. a form
endpoint) are not checked.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import MutableMapping, Sequence
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.http.errors import (
    HttpError,
    InvalidJson,
    JsonTooDeep,
    JsonTooLarge,
    UnsupportedMediaType,
)
from bastion.http.middleware._next import next_app
from bastion.http.middleware._paths import PathRules
from bastion.http.problems import send_problem

_FRAMED_BY_HEADERS = frozenset({"1.0", "1.1"})
_TOKEN_CHARS = (string.ascii_lowercase + string.digits + "!#$%&'*+.^_`|~-").encode("ascii")
_JSON = b"application/json"
_JSON_SUFFIX = b"+json"

# A JSON string, escapes included; an unterminated one runs to the end of the text. The unrolled
# loop matches each character one way only, so the scan is linear even on hostile input.
_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*(?:"|\\?\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")

#: Where the middleware leaves ``(body, value)`` for the body it checked and parsed.
PARSED_JSON_SCOPE_KEY = "bastion.parsed_json"
#: What :func:`parsed_json` answers when the scope holds no value for the body.
NOT_PARSED: Any = object()


def is_json_content_type(values: Sequence[bytes]) -> bool:
    """True for one ``application/json`` or ``application/*+json``, charset UTF-8 or none."""
    if len(values) != 1:
        return False
    if values[0] == _JSON:  # what nearly every client sends: no parameter to look at
        return True
    media_type, _, parameters = values[0].partition(b";")
    media_type = media_type.strip().lower()
    if media_type != _JSON:
        main, _, subtype = media_type.partition(b"/")
        name = subtype.removesuffix(_JSON_SUFFIX)
        if (
            main != b"application"
            or name == subtype
            or not name
            or name.translate(None, _TOKEN_CHARS)
        ):
            return False
    for parameter in parameters.split(b";"):
        key, _, value = parameter.partition(b"=")
        if key.strip().lower() == b"charset" and value.strip().strip(b'"').lower() != b"utf-8":
            return False
    return True


def json_problem(body: bytes, *, max_depth: int, max_elements: int) -> HttpError | None:
    """The reason ``body`` is refused, or ``None`` if it is acceptable JSON."""
    return _checked(body, max_depth=max_depth, max_elements=max_elements)[0]


def _checked(body: bytes, *, max_depth: int, max_elements: int) -> tuple[HttpError | None, Any]:
    """:func:`json_problem`, and the parsed value when there is none."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidJson(), None
    error = _shape_problem(text, max_depth=max_depth, max_elements=max_elements)
    if error is not None:
        return error, None
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):  # JSONDecodeError, too many digits, NaN
        return InvalidJson(), None
    return None, value


def parsed_json(scope: MutableMapping[str, Any], body: bytes) -> Any:
    """What ``json.loads(body)`` returns, as this middleware parsed it, or :data:`NOT_PARSED`
    when it did not parse ``body`` (another body, an exempt path, no middleware).

    The same value: the middleware accepted the body as UTF-8 without a BOM, NUL bytes or
    non-standard constants, which ``json.loads`` on the bytes then decodes as UTF-8 and parses
    to an equal value. Each value is handed out once (the scope entry is removed): no two
    readers share a mutable value."""
    kept = scope.get(PARSED_JSON_SCOPE_KEY)
    if kept is None or kept[0] != body:
        return NOT_PARSED
    del scope[PARSED_JSON_SCOPE_KEY]
    return kept[1]


def _shape_problem(text: str, *, max_depth: int, max_elements: int) -> HttpError | None:
    """Depth and element count of JSON ``text``, scanned without parsing (no recursion)."""
    # Strings may contain any bracket or comma: remove them, then scan the structure left to
    # right, stopping at the first limit passed (so the loop is bounded by the limits).
    structure = _without_strings(text)
    depth = containers = 0
    for bracket in _NOT_BRACKET.sub("", structure):
        if bracket in "[{":
            depth += 1
            containers += 1
            if depth > max_depth:
                return JsonTooDeep()
            if containers > max_elements:
                return JsonTooLarge()
        else:
            depth -= 1
            if depth < 0:
                return InvalidJson()
    # Each element is introduced by an opening bracket or a comma: an upper bound on the number
    # of array items plus object members (an empty container also counts as one).
    if containers + structure.count(",") > max_elements:
        return JsonTooLarge()
    return None


def _without_strings(text: str) -> str:
    """``text`` without its JSON strings (``_STRING``'s matches, an unterminated string runs to
    the end). Without a backslash no string has an escape, so the strings are exactly every
    other piece between quotes (the last one, if unterminated, included): the same result as
    the regular expression, several times cheaper on a request body."""
    if "\\" in text:
        return _STRING.sub("", text)
    return "".join(text.split('"')[::2])


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: RFC 8259 section 6


#: ``json.loads(text, parse_constant=_refuse_constant)`` builds this decoder for every call;
#: built once (a text starting with a byte order mark, which ``json.loads`` refuses before
#: decoding, is refused by the decoder too: not a JSON value).
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


class JsonContentMiddleware:
    """Refuses request bodies that are not bounded, well-formed JSON (415 / 400)."""

    def __init__(
        self,
        app: ASGIApp,
        max_depth: int,
        max_elements: int,
        exempt: Sequence[str] = (),
    ) -> None:
        if max_depth < 1 or max_elements < 1:
            raise ValueError("max_depth and max_elements must be positive")
        self.app = app
        self._next = next_app(app)
        self.max_depth = max_depth
        self.max_elements = max_elements
        self._exempt = PathRules((template, True) for template in exempt)
        #: What this middleware calls for a request without a body: a layer outside that has
        #: established there is none may call it directly (one hop less per request).
        self.without_body = self._next

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._next(scope, receive, send)
            return
        content_types: list[bytes] = []
        has_body: bool | None = None  # None: unknown until read (HTTP/2 without Content-Length)
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_types.append(value)
            elif name == b"content-length":
                # Anything but zeros counts as a body (a malformed length too: fail closed).
                has_body = has_body or bool(value.translate(None, b"0 \t,"))
            elif name == b"transfer-encoding":
                has_body = True
        if has_body is None and scope.get("http_version") in _FRAMED_BY_HEADERS:
            has_body = False
        if has_body is False or (self._exempt and self._exempt.lookup(scope["path"])):
            await self._next(scope, receive, send)
            return
        json_declared = is_json_content_type(content_types)
        if has_body and not json_declared:
            await send_problem(scope, send, UnsupportedMediaType())
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client disconnected: there is no one to answer
        if body:
            if not json_declared:
                await send_problem(scope, send, UnsupportedMediaType())
                return
            error, value = _checked(body, max_depth=self.max_depth, max_elements=self.max_elements)
            if error is not None:
                await send_problem(scope, send, error)
                return
            scope[PARSED_JSON_SCOPE_KEY] = (body, value)
        await self._next(scope, _replay(body, receive), send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered ``body`` once, then defers to the server's."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
