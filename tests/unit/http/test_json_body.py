"""The shared JSON body helper: the value the JSON middleware parsed is what ``json.loads``
gives for the same body, taken once and only for that very body; without it, ``loads`` parses
(the same value or the same error); ``json_invalid`` is FastAPI's error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from tests.unit.authz.api.test_decision_body import BODIES, _outcome, _same
from tests.unit.http.helpers import call, stamped

from bastion.authz.api._decision import parse_body
from bastion.authz.api.schemas import CheckBody
from bastion.http import json_body
from bastion.http.json_body import json_invalid, loads_body, read_body
from bastion.http.middleware.content_type import (
    PARSED_JSON_SCOPE_KEY,
    JsonContentMiddleware,
    json_problem,
)

#: Bodies the middleware accepts (others never reach a route).
ACCEPTED = [raw for raw in BODIES if json_problem(raw, max_depth=32, max_elements=1000) is None]


def test_some_bodies_are_accepted_and_some_refused() -> None:
    assert 5 < len(ACCEPTED) < len(BODIES)


async def _through_middleware(raw: bytes, endpoint: Any) -> int:
    """``endpoint(scope, raw)``'s answer through the JSON middleware; the status."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        result = endpoint(scope, await read_body(request))
        await JSONResponse({"ok": result})(scope, receive, send)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(raw))]
    guarded = stamped(JsonContentMiddleware(app, max_depth=32, max_elements=1000))
    exchange = await call(guarded, path="/stores/x/check", headers=headers, chunks=[raw])
    return exchange.status


@pytest.mark.parametrize("raw", ACCEPTED)
async def test_the_middleware_value_is_json_loads_of_the_body(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[Any] = []

    def endpoint(scope: Scope, body: bytes) -> bool:
        assert body == raw
        assert PARSED_JSON_SCOPE_KEY in scope
        # No second parse: the helper's own parser must not run.
        with monkeypatch.context() as patched:
            patched.setattr(json_body, "loads", _refuse)
            taken.append(loads_body(scope, body))
        assert PARSED_JSON_SCOPE_KEY not in scope  # handed out once
        return True

    assert await _through_middleware(raw, endpoint) == 200
    assert _same(taken[0], json.loads(raw))


def _refuse(raw: bytes) -> Any:
    raise AssertionError("parsed again")


@pytest.mark.parametrize("raw", ACCEPTED)
async def test_parse_body_with_the_middleware_value_is_parse_body_alone(raw: bytes) -> None:
    outcomes: list[tuple[str, Any]] = []

    def endpoint(scope: Scope, body: bytes) -> bool:
        outcomes.append(_parsed(lambda: parse_body(body, CheckBody, scope)))
        outcomes.append(_parsed(lambda: parse_body(body, CheckBody)))
        return True

    assert await _through_middleware(raw, endpoint) == 200
    assert outcomes[0] == outcomes[1]


def _parsed(parse: Any) -> tuple[str, Any]:
    from fastapi.exceptions import RequestValidationError  # noqa: PLC0415

    try:
        return "ok", parse().model_dump()
    except RequestValidationError as exc:
        return "invalid", (repr(exc.errors()), repr(exc.body))


def test_another_body_or_no_scope_is_parsed_here() -> None:
    raw = b'{"a": [1, 2]}'
    scope: dict[str, Any] = {PARSED_JSON_SCOPE_KEY: (b'{"a": 1}', {"a": 1})}
    assert loads_body(scope, raw) == {"a": [1, 2]}
    assert PARSED_JSON_SCOPE_KEY in scope  # not this body's: left for its own reader
    assert loads_body(None, raw) == {"a": [1, 2]}
    assert loads_body({}, raw) == {"a": [1, 2]}


@pytest.mark.parametrize("raw", BODIES)
def test_without_the_middleware_loads_body_is_json_loads(raw: bytes) -> None:
    ours, theirs = _outcome(lambda: loads_body({}, raw)), _outcome(lambda: json.loads(raw))
    assert ours[0] == theirs[0]
    assert _same(ours[1], theirs[1])


def test_json_invalid_is_fastapis_error() -> None:
    try:
        json.loads(b'{"a": }')
    except json.JSONDecodeError as exc:
        error = json_invalid(exc)
    assert error.errors() == [
        {
            "type": "json_invalid",
            "loc": ("body", 6),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "Expecting value"},
        }
    ]
    assert error.body == '{"a": }'
