"""The direct login and refresh routes write a bearer answer's JSON themselves
(``bearer_json``): the bytes the FastAPI route's response field makes of ``TokensOut`` with
``exclude_none``, for any strings, escapes included."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.responses import Response

from bastion.identity._direct import Serialized
from bastion.identity.sessions.routes import TokensOut, bearer_json, token_answer
from bastion.identity.sessions.services import IssuedTokens

JWT = "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl_-"
REFRESH = "rt_q2Zx-8Yh_Lm3pQ9vT0wXc1bN4kJ7sR2uE5gA6dF8hK"


def _tokens(**changes: Any) -> IssuedTokens:
    fields: dict[str, Any] = {
        "user_id": "u1",
        "session_id": "01JDQ2ZK8W3Y7N5X4V6T9R0PQM",
        "access_token": JWT,
        "expires_in": 900,
        "refresh_token": REFRESH,
    }
    fields.update(changes)
    return IssuedTokens(**fields)


def _route_bytes(tokens: IssuedTokens) -> bytes:
    """What the FastAPI route's response field sends for the bearer answer."""
    router = APIRouter()

    @router.post("/r", response_model=TokensOut, response_model_exclude_none=True)
    async def endpoint() -> TokensOut:  # pragma: no cover - never called
        raise NotImplementedError

    route = router.routes[0]
    assert isinstance(route, APIRoute)
    field = route.response_field
    assert field is not None
    content = token_answer(None, tokens, "bearer", Response())  # type: ignore[arg-type]
    value, errors = field.validate(content, {}, loc=("response",))
    assert not errors
    return field.serialize_json(value, exclude_none=True)


@pytest.mark.parametrize(
    "tokens",
    [
        _tokens(),
        _tokens(expires_in=0),
        _tokens(expires_in=-5),
        _tokens(expires_in=10**20),
        _tokens(session_id="x", access_token="a", refresh_token="r"),
        _tokens(access_token="a b ~ ' < > & / = + ! ? # % { } [ ] ; : , ."),
        _tokens(access_token=""),
    ],
)
def test_bearer_json_is_the_models_bytes(tokens: IssuedTokens) -> None:
    written = bearer_json(tokens)
    assert type(written) is Serialized
    assert written == _route_bytes(tokens)


@pytest.mark.parametrize(
    "tokens",
    [
        _tokens(access_token='quote " in it'),
        _tokens(refresh_token="back \\ slash"),
        _tokens(session_id="new\nline"),
        _tokens(access_token="tab\there"),
        _tokens(access_token="nul\x00 bell\x07 esc\x1b"),
        _tokens(access_token="del\x7f"),
        _tokens(refresh_token="Zoë"),
        _tokens(refresh_token="\u2028 separators \u2029"),
        _tokens(session_id="名前 🙂"),
        _tokens(access_token="</script> & <!--"),
    ],
)
def test_escaped_strings_are_the_models_bytes(tokens: IssuedTokens) -> None:
    assert bearer_json(tokens) == _route_bytes(tokens)


@pytest.mark.parametrize(
    "tokens",
    [
        _tokens(expires_in=True),
        _tokens(expires_in=900.0),
        _tokens(access_token=None),
        _tokens(refresh_token=type("S", (str,), {})("a")),
    ],
)
def test_other_types_are_left_to_the_model(tokens: IssuedTokens) -> None:
    assert bearer_json(tokens) is None
