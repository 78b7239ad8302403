"""The check body's JSON: the scanner fast path gives what ``json.loads`` gives (value or
error, errors as FastAPI reports them) for every kind of body."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from bastion.authz.api._decision import parse_body
from bastion.authz.api.schemas import CheckBody
from bastion.http.json_body import loads as _loads

KEY = '"tuple_key":{"user":"user:anne","relation":"viewer","object":"document:1"}'
BODIES: list[bytes] = [
    ("{" + KEY + "}").encode(),
    ("{" + KEY + ',"consistency":"MINIMIZE_LATENCY","trace":true}').encode(),
    (
        "{"
        + KEY
        + ',"context":{"x":1e400,"y":NaN,"z":-Infinity,"n":123456789012345678901234567890}}'
    ).encode(),
    ("{" + KEY + ',"context":{"d":1,"d":2,"f":0.1000000000000000055511151231257827}}').encode(),
    ("{" + KEY + r',"context":{"s":"\ud800","t":"\u0000","u":"é"}}').encode(),
    ("{" + KEY + ',"context":{"raw":"\udcff"}}').encode("utf-8", "surrogatepass"),
    ("{" + KEY + ',"context":{"é":"ü"}}').encode("utf-16"),
    ("{" + KEY + ',"context":{"é":"ü"}}').encode("utf-16-le"),
    ("{" + KEY + ',"context":{"é":"ü"}}').encode("utf-32-le"),
    b"\xef\xbb\xbf{" + KEY.encode() + b"}",
    b" {" + KEY.encode() + b"} ",
    b"{" + KEY.encode() + b"}\n",
    b"{" + KEY.encode() + b"}{}",
    b"{" + KEY.encode() + b",}",
    b"{" + KEY.encode() + b"} }",
    b"{" + KEY.encode() + b'"}',
    b'{"tuple_key":1}',
    b"{}",
    b"{ }",
    b"{\xff}",
    b"{\x00}",
    b"{",
    b"}",
    b"[1]",
    b"null",
    b'"{}"',
]


def _outcome(call: Any) -> tuple[str, Any]:
    try:
        value = call()
    except json.JSONDecodeError as exc:
        return "json", (exc.msg, exc.pos, exc.doc)
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)
    return "ok", value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("raw", BODIES)
def test_loads_is_json_loads(raw: bytes) -> None:
    ours, theirs = _outcome(lambda: _loads(raw)), _outcome(lambda: json.loads(raw))
    assert ours[0] == theirs[0]
    assert _same(ours[1], theirs[1])


@pytest.mark.parametrize("raw", BODIES)
def test_parse_body_is_json_loads_then_model_validate(raw: bytes) -> None:
    def reference() -> CheckBody:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestValidationError([{"pos": exc.pos, "msg": exc.msg}]) from exc
        try:
            return CheckBody.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc

    def outcome(call: Any) -> tuple[str, Any]:
        try:
            return "ok", call().model_dump()
        except RequestValidationError as exc:
            return "invalid", len(exc.errors())
        except ValueError as exc:
            return type(exc).__name__, str(exc)

    ours, theirs = outcome(lambda: parse_body(raw, CheckBody)), outcome(reference)
    assert ours[0] == theirs[0]
    assert _same(ours[1], theirs[1])


def test_a_deep_body_fails_as_json_loads_does() -> None:
    raw = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    assert _outcome(lambda: _loads(raw))[0] == _outcome(lambda: json.loads(raw))[0]
