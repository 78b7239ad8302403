"""JsonContentMiddleware: bodies must be declared JSON, be UTF-8 JSON, and be bounded in shape."""

from __future__ import annotations

import json
import random
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.unit.http.helpers import assert_problem, call, client, stamped

from bastion.http.middleware import content_type
from bastion.http.middleware.content_type import (
    NOT_PARSED,
    PARSED_JSON_SCOPE_KEY,
    JsonContentMiddleware,
    is_json_content_type,
    json_problem,
    parsed_json,
)

MAX_DEPTH = 8
MAX_ELEMENTS = 100


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"received": json.loads(body) if body else None})


async def form(request: Request) -> Response:
    return JSONResponse({"form": (await request.body()).decode()})


def guarded(inner: ASGIApp | None = None) -> ASGIApp:
    app = inner or Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/forms/{name}", form, methods=["POST"]),
        ]
    )
    return stamped(
        JsonContentMiddleware(
            app, max_depth=MAX_DEPTH, max_elements=MAX_ELEMENTS, exempt=["/forms/{name}"]
        )
    )


async def post(content: bytes, content_type: str | None = "application/json") -> httpx.Response:
    headers = {"content-type": content_type} if content_type is not None else {}
    async with client(guarded()) as http:
        return await http.post("/echo", content=content, headers=headers)


# -- media type ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "text/plain; charset=utf-8",
        "application/xml",
        "text/json",
        "application/jsonp",
        "application/json-patch",
        "application/+json",
        "application/a b+json",
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-16",
        "",
        None,
    ],
)
async def test_body_that_is_not_declared_json_is_415(content_type: str | None) -> None:
    response = await post(b'{"a": 1}', content_type)
    assert_problem(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        'application/json; charset="UTF-8"',
        "application/json;charset=utf-8; foo=bar",
        "application/merge-patch+json",
        "application/vnd.bastion.v1+json",
    ],
)
async def test_json_media_types_are_accepted(content_type: str) -> None:
    response = await post(b'{"a": 1}', content_type)
    assert response.json() == {"received": {"a": 1}}


async def test_two_content_types_are_415() -> None:
    exchange = await call(
        guarded(),
        path="/echo",
        headers=[
            (b"content-type", b"application/json"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"2"),
        ],
        chunks=[b"{}"],
    )
    assert exchange.status == 415


@pytest.mark.parametrize("method", ["PUT", "DELETE", "GET"])
async def test_any_method_with_a_body_is_checked(method: str) -> None:
    async with client(guarded()) as http:
        response = await http.request(
            method, "/echo", content=b"a=1", headers={"content-type": "text/plain"}
        )
    assert_problem(response, 415, "unsupported_media_type")


# -- JSON validity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"   ",
        b'{"a": 1} trailing',
        b"\xff\xfe{\x00}\x00",
        '{"a": "\u00e9"}'.encode("latin-1"),
        '{"a": 1}'.encode("utf-16"),
        b'\xef\xbb\xbf{"a": 1}',
        b"NaN",
        b'{"a": Infinity}',
        b"[-Infinity]",
        b"1" * 5000,
        b"]",
        b"[1]]",
        b"{'a': 1}",
    ],
)
async def test_invalid_json_is_400(content: bytes) -> None:
    if not content:
        # An empty body is no body: the route decides (here it accepts).
        assert (await post(content)).json() == {"received": None}
        return
    assert_problem(await post(content), 400, "json_invalid")


async def test_deeply_nested_body_is_400_not_500() -> None:
    response = await post(b"[" * 10_000)
    assert_problem(response, 400, "json_too_deep")
    response = await post(b"[" * 10_000 + b"]" * 10_000)
    assert_problem(response, 400, "json_too_deep")
    response = await post(b'{"a":' * 5000 + b"1" + b"}" * 5000)
    assert_problem(response, 400, "json_too_deep")


async def test_depth_at_the_limit_passes() -> None:
    value = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert (await post(value)).status_code == 200
    assert_problem(await post(b"[" + value + b"]"), 400, "json_too_deep")


async def test_brackets_inside_strings_do_not_count() -> None:
    payload = {"a": "[[[[[[[[[[{{{{{{{{{{,,,,,,,", "b": 'esc \\" [[[[[[[[[[ "'}
    response = await post(json.dumps(payload).encode())
    assert response.json() == {"received": payload}


async def test_escaped_quotes_cannot_hide_nesting() -> None:
    # The string ends at the first unescaped quote: the nesting after it is counted.
    content = b'["\\\\", ' + b"[" * 50 + b"]" * 50 + b"]"
    assert_problem(await post(content), 400, "json_too_deep")


async def test_too_many_elements_is_400() -> None:
    assert (await post(json.dumps(list(range(MAX_ELEMENTS - 1))).encode())).status_code == 200
    response = await post(json.dumps(list(range(MAX_ELEMENTS + 1))).encode())
    assert_problem(response, 400, "json_too_many_elements")
    members = {f"k{i}": i for i in range(MAX_ELEMENTS + 1)}
    assert_problem(await post(json.dumps(members).encode()), 400, "json_too_many_elements")


async def test_valid_json_reaches_the_route() -> None:
    payload = {"name": "ok", "tags": ["a", "b"], "nested": {"n": [1, 2.5, None, True]}}
    assert (await post(json.dumps(payload).encode())).json() == {"received": payload}


# -- body framing and pass-through ----------------------------------------------------------


async def test_chunked_json_is_read_and_replayed() -> None:
    exchange = await call(
        guarded(),
        path="/echo",
        headers=[(b"transfer-encoding", b"chunked"), (b"content-type", b"application/json")],
        chunks=[b'{"a"', b": [1, ", b"2]}"],
    )
    assert exchange.status == 200
    assert json.loads(exchange.body) == {"received": {"a": [1, 2]}}


async def test_chunked_body_with_wrong_type_is_refused_before_reading() -> None:
    exchange = await call(
        guarded(),
        path="/echo",
        headers=[(b"transfer-encoding", b"chunked"), (b"content-type", b"text/plain")],
        chunks=[b"a", b"b"],
    )
    assert exchange.status == 415
    assert exchange.receive_calls == 0


async def test_request_without_body_passes_untouched() -> None:
    seen: list[Receive] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(receive)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    for headers in ([], [(b"content-length", b"0")], [(b"content-type", b"text/plain")]):
        exchange = await call(guarded(app), method="GET", path="/echo", headers=headers)
        assert exchange.status == 204
        assert exchange.receive_calls == 0
    assert all(receive.__name__ == "receive" for receive in seen)


async def test_http2_without_length_is_read_to_decide() -> None:
    empty = await call(guarded(), method="GET", path="/echo", http_version="2")
    assert empty.status == 200
    no_type = await call(guarded(), path="/echo", http_version="2", chunks=[b"{}"])
    assert no_type.status == 415
    json_body = await call(
        guarded(),
        path="/echo",
        http_version="2",
        headers=[(b"content-type", b"application/json")],
        chunks=[b"[1]"],
    )
    assert json.loads(json_body.body) == {"received": [1]}


async def test_exempt_path_accepts_forms() -> None:
    async with client(guarded()) as http:
        response = await http.post("/forms/login", data={"user": "u"})
    assert response.json() == {"form": "user=u"}


async def test_client_gone_while_reading_gets_no_answer() -> None:
    async def disconnecting() -> dict[str, object]:
        return {"type": "http.disconnect"}

    sent: list[object] = []

    async def send(message: object) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/echo",
        "http_version": "1.1",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"10")],
    }
    await guarded()(scope, disconnecting, send)
    assert sent == []


async def test_after_the_replay_receive_defers_to_the_server() -> None:
    received: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        received.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    await call(guarded(app), path="/echo", headers=headers, chunks=[b"[", b"]"])
    assert received == [
        {"type": "http.request", "body": b"[]", "more_body": False},
        {"type": "http.disconnect"},
    ]


# -- the checks themselves --------------------------------------------------------------------


@pytest.mark.timing
def test_scan_is_linear_on_hostile_strings() -> None:
    hostile = [
        b'"\\"' * 300_000,
        b'"' * 900_000,
        b"\\" * 900_000,
        b'["' + b"\\" * 900_000,
        b"," * 900_000,
        b"]" * 900_000,
    ]
    for body in hostile:
        start = time.perf_counter()
        assert json_problem(body, max_depth=32, max_elements=10_000) is not None
        assert time.perf_counter() - start < 1.0, body[:10]


def test_json_problem_reasons() -> None:
    def code(body: bytes) -> str | None:
        error = json_problem(body, max_depth=2, max_elements=3)
        return error.code if error is not None else None

    assert code(b'{"a": [1, 2]}') is None
    assert code(b'"just a string"') is None
    assert code(b"[[[]]]") == "json_too_deep"
    assert code(b"[1, 2, 3, 4]") == "json_too_many_elements"
    assert code(b"[1, 2,") == "json_invalid"


def test_is_json_content_type_needs_exactly_one_value() -> None:
    assert is_json_content_type([b"application/json"])
    assert not is_json_content_type([])
    assert not is_json_content_type([b"application/json", b"application/json"])


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        JsonContentMiddleware(guarded(), max_depth=0, max_elements=10)


# -- the parsed value handed on ------------------------------------------------------------------

HANDED_ON = [
    b'{"refresh_token": "rt_abc"}',
    b'  {"a": [1, -2.5e-3, 1e400, 12345678901234567890, true, false, null]}  ',
    '{"caf\u00e9": "\u2603 \\u00e9 \\ud800 \\"q\\""}'.encode(),
    b'"just a string"',
    b"0",
    b"[]",
    b'{"a": 1, "a": 2}',
]


def _json_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]


@pytest.mark.parametrize("body", HANDED_ON)
async def test_the_value_handed_on_is_what_json_loads_gives_for_the_body(body: bytes) -> None:
    """An endpoint reading the body as JSON (``parsed_json``) gets what ``json.loads`` of the
    same bytes gives; once only, and only for that very body."""
    handed: list[object] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        assert raw == body
        assert parsed_json(scope, b"another body") is NOT_PARSED  # not that body: kept
        handed.append(parsed_json(scope, raw))
        handed.append(parsed_json(scope, raw))  # handed out once
        await JSONResponse({})(scope, receive, send)

    exchange = await call(guarded(app), path="/echo", headers=_json_headers(body), chunks=[body])
    assert exchange.status == 200
    assert handed[1] is NOT_PARSED
    expected = json.loads(body)
    assert json.dumps(handed[0]) == json.dumps(expected)  # equal, and 1e400 (inf) too
    assert type(handed[0]) is type(expected)


async def test_nothing_is_handed_on_for_refused_or_exempt_bodies() -> None:
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await JSONResponse({})(scope, receive, send)

    refused = await call(guarded(app), path="/echo", headers=_json_headers(b"{"), chunks=[b"{"])
    assert refused.status == 400
    assert scopes == []
    exempt = await call(guarded(app), path="/forms/x", headers=_json_headers(b"{}"), chunks=[b"{}"])
    assert exempt.status == 200
    assert PARSED_JSON_SCOPE_KEY not in scopes[0]


_PIECES = ('"', "\\", "\\\\", '\\"', "[", "]", "{", "}", ",", ":", "a", "1", " ", "\n", "é", "\x00")


@pytest.mark.parametrize("seed", range(20))
def test_strings_are_removed_as_the_regular_expression_removes_them(seed: int) -> None:
    """The quote-split fast path (no backslash) gives what ``_STRING.sub`` gives, on random
    texts of quotes, escapes, brackets and other characters, terminated or not."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    for _ in range(500):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randrange(40)))
        assert content_type._without_strings(text) == content_type._STRING.sub("", text), text
    body = '{"tuple_key":{"user":"user:1","relation":"viewer","object":"doc:{[,"},"x":["a,]"]}'
    assert content_type._without_strings(body) == "{:{:,:,:},:[]}"


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        "[1, 2.5, -3e2, true, false, null]",
        '\ufeff{"a": 1}',
        '{"a": NaN}',
        "[Infinity]",
        "[-Infinity]",
        '{"a": 1} x',
        '{"a": 1e999999}',
        '"\\ud800"',
        "",
    ],
)
def test_the_kept_decoder_refuses_what_json_loads_refuses(text: str) -> None:
    def refused(parse: object) -> bool:
        try:
            parse(text)  # type: ignore[operator]
        except (ValueError, RecursionError):
            return True
        return False

    by_loads = refused(lambda t: json.loads(t, parse_constant=content_type._refuse_constant))
    assert refused(content_type._DECODER.decode) is by_loads
    body = text.encode()
    problem = json_problem(body, max_depth=MAX_DEPTH, max_elements=MAX_ELEMENTS)
    assert (problem is not None) is by_loads
